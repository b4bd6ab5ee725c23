// Every action shows the exact request it sends and asks before sending it; the answer, or the
// server's refusal (a read key gets 403), shows in the same dialog.

import { call, curl, describeCall } from "./api.js";
import { h } from "./dom.js";

const dialog = () => document.getElementById("confirm");

// Ask, send, show the outcome. Resolves to the answer, or null when cancelled or refused.
export function act(what, method, path, body) {
  const box = dialog();
  const ok = document.getElementById("confirm-ok");
  const cancel = document.getElementById("confirm-cancel");
  const outcome = document.getElementById("confirm-outcome");
  document.getElementById("confirm-title").textContent = "Confirm";
  document.getElementById("confirm-what").textContent = what;
  document.getElementById("confirm-call").textContent = describeCall(method, path, body);
  document.getElementById("confirm-curl").textContent = curl(method, path, body);
  outcome.replaceChildren();
  ok.hidden = false;
  ok.disabled = false;
  cancel.textContent = "Cancel";
  return new Promise((resolve) => {
    let answer = null;
    const send = async (event) => {
      event.preventDefault();
      ok.disabled = true;
      outcome.replaceChildren(h("p", {}, "Sending…"));
      try {
        answer = await call(method, path, body);
        outcome.replaceChildren(h("p", { class: "outcome-ok" }, `Done: ${method} ${path} answered.`));
        box.close("done");
      } catch (err) {
        outcome.replaceChildren(h("p", { class: "outcome-bad", dataset: { code: err.code ?? "" } }, `Refused: ${err.toString()}`));
        ok.hidden = true;
        cancel.textContent = "Close";
        cancel.focus();
      }
    };
    ok.addEventListener("click", send);
    box.addEventListener(
      "close",
      () => {
        ok.removeEventListener("click", send);
        resolve(answer);
      },
      { once: true },
    );
    box.showModal();
    cancel.focus(); // the safe choice has the focus: Enter doesn't send by accident
  });
}
