"""``EmbedswitchVectorStore``: an embedswitch collection as a LangChain vector store (extra ``langchain``).

The server embeds. Texts go to it as records, every version of the collection embeds them with its
own model, and a query is embedded by the version that answers it, so a LangChain application
keeps working, unchanged, while the collection moves to a new model. LangChain's ``embeddings``
play no part; each search result's metadata names the version that answered.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Self, TypeVar

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from .._errors import UnknownKind
from ..client import Client
from ..specs import MAX_BATCH, MAX_PAGE

VERSION_KEY = "embedswitch_version"
"""Metadata key of a search result: the version that answered (in an interleaved answer, the
version whose list the hit came from)."""

REQUEST_ID_KEY = "embedswitch_request_id"
"""Metadata key of a search result: the answer's ``request_id``, which ``Client.feedback`` names."""

_T = TypeVar("_T")


def _chunks(items: Sequence[_T], size: int) -> Iterator[list[_T]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _no_other_arguments(method: str, unknown: dict[str, Any]) -> None:
    if unknown:
        raise TypeError(
            f"EmbedswitchVectorStore.{method}() got unexpected arguments {sorted(unknown)}; "
            "see its docstring for the arguments it takes"
        )


def _cosine_relevance(score: float) -> float:
    """A cosine similarity (-1 to 1) as a relevance from 0 to 1."""
    return min(1.0, max(0.0, (1.0 + score) / 2.0))


class EmbedswitchVectorStore(VectorStore):
    """The records of one ``kind`` of an embedswitch collection, through ``Client`` (HTTP).

    - A text is a record: ``Document.id`` is the record id, ``page_content`` its text and
      ``metadata`` its ``fields`` (any JSON object). Adding a document whose id exists replaces it.
    - A search is answered by one version, chosen by the collection's traffic weights (``key``: sticky
      per user), or pinned with ``version``. Unless ``version_metadata`` is False, each result's
      metadata also holds ``embedswitch_version`` (the version that answered) and
      ``embedswitch_request_id`` (for ``Client.feedback``); a record field of either name is shadowed.
    - Read your writes: a search waits until the answering version has applied every write this
      store made (``min_seq``), for up to the server's ``min_seq_timeout_s`` (then ``NotCaughtUp``).
    - ``filter`` is the server's filter grammar (docs/api.md, Filters), applied before ranking.
    - Scores are the answering version's cosine similarities, best first; the relevance scores of
      ``similarity_search_with_relevance_scores`` map them from -1..1 to 0..1.
    - A search of a kind that has no record yet answers ``[]`` (an empty store).
    - Errors are embedswitch's exceptions (``CollectionNotFound``, ``InvalidRequest`` naming a bad
      filter, ...). The async methods are LangChain's: the same calls, run in a thread.
    """

    def __init__(
        self,
        client: Client,
        collection: str,
        *,
        kind: str = "doc",
        version: str | None = None,
        version_metadata: bool = True,
    ) -> None:
        """``collection`` must exist (``from_texts`` can create it). ``version`` pins every search to
        that version, whatever the traffic weights. The caller keeps ``client`` and closes it."""
        self.client = client
        self.collection = collection
        self.kind = kind
        self.version = version
        self.version_metadata = version_metadata
        self._written_seq = 0
        self._lock = threading.Lock()

    @property
    def embeddings(self) -> Embeddings | None:
        """None: the server embeds, each version with its own model."""
        return None

    def _wrote(self, seq: int) -> None:
        with self._lock:
            self._written_seq = max(self._written_seq, seq)

    # -- writes -------------------------------------------------------------------------------

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Upserts one record per text, its metadata as the record's fields, and returns the ids:
        those of ``ids``, and a new uuid4 for a text without one (no ``ids``, or None in it). Each
        batch of up to 10,000 records is stored all or nothing."""
        _no_other_arguments("add_texts", kwargs)
        texts = list(texts)
        for name, given in (("metadatas", metadatas), ("ids", ids)):
            if given is not None and len(given) != len(texts):
                raise ValueError(f"{len(texts)} texts but {len(given)} {name}; pass one per text")
        named: list[str | None] = list(ids) if ids is not None else [None] * len(texts)
        new_ids = [str(uuid.uuid4()) if id is None else id for id in named]
        fields = metadatas if metadatas is not None else [{}] * len(texts)
        records = [
            {"id": id, "kind": self.kind, "text": text, "fields": dict(record_fields)}
            for id, text, record_fields in zip(new_ids, texts, fields, strict=True)
        ]
        for batch in _chunks(records, MAX_BATCH):
            self._wrote(self.client.upsert(self.collection, batch).seq)
        return new_ids

    def delete(
        self, ids: list[str] | None = None, *, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> bool | None:
        """Deletes the records with these ids (ids no record has are ignored), or with ``filter``
        every record whose fields match it, and returns True. Never everything: without either it
        raises ``ValueError`` (``Client.delete_collection`` deletes a whole collection)."""
        _no_other_arguments("delete", kwargs)
        if (ids is None) == (filter is None):
            raise ValueError(
                "pass the ids to delete or a filter= selecting them (not both); "
                "to delete every record, delete the collection with Client.delete_collection"
            )
        if filter is not None:
            more = True
            while more:
                ack = self.client.delete_where(self.collection, filter, kind=self.kind)
                self._wrote(ack.seq)
                more = ack.more
            return True
        for chunk in _chunks(ids or [], MAX_PAGE):
            self._wrote(self.client.delete_records(self.collection, chunk, kind=self.kind).seq)
        return True

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | None = None,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        client: Client | None = None,
        collection: str | None = None,
        create: dict[str, Any] | None = None,
        kind: str = "doc",
        version: str | None = None,
        version_metadata: bool = True,
        **kwargs: Any,
    ) -> Self:
        """A store over ``client`` and ``collection`` (both required) with ``texts`` added. With
        ``create``, a version spec such as ``{"name": "v1", "model": "minilm"}``, the collection is
        created first (``CollectionExists`` if the name is taken). ``embedding`` must be None: the
        versions' models embed, on the server."""
        _no_other_arguments("from_texts", kwargs)
        if embedding is not None:
            raise ValueError(
                "embedswitch embeds on the server, each version of the collection with its own model: "
                'pass embedding=None and choose the model in the version spec (create={"name": "v1", '
                '"model": "minilm"})'
            )
        if client is None or collection is None:
            raise TypeError("EmbedswitchVectorStore.from_texts() needs client= and collection=")
        if create is not None:
            client.create_collection(collection, create)
        store = cls(client, collection, kind=kind, version=version, version_metadata=version_metadata)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    @classmethod
    def from_documents(
        cls, documents: list[Document], embedding: Embeddings | None = None, **kwargs: Any
    ) -> Self:
        """``from_texts`` with the documents' texts, metadata and ids (``embedding`` may be left out)."""
        return super().from_documents(documents, embedding, **kwargs)  # type: ignore[arg-type]  # None is ours

    # -- reads --------------------------------------------------------------------------------

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The records with these ids, in the order asked; ids no record has are left out. Their
        metadata is the records' fields alone (no version answers a read by id)."""
        documents = []
        for chunk in _chunks(ids, MAX_PAGE):
            found = self.client.get_records(self.collection, chunk, kind=self.kind)
            documents += [Document(id=r.id, page_content=r.text, metadata=r.fields) for r in found.records]
        return documents

    def similarity_search(
        self,
        query: str,
        k: int = 4,
        filter: dict[str, Any] | None = None,
        *,
        key: str | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """The ``k`` (1 to 1,000) records nearest to ``query``, best first: see the class docstring."""
        _no_other_arguments("similarity_search", kwargs)
        return [doc for doc, _ in self._search(query, None, k, filter, key)]

    def similarity_search_with_score(
        self,
        query: str,
        k: int = 4,
        filter: dict[str, Any] | None = None,
        *,
        key: str | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """As ``similarity_search``, each document with its cosine similarity to the query."""
        _no_other_arguments("similarity_search_with_score", kwargs)
        return self._search(query, None, k, filter, key)

    def similarity_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        filter: dict[str, Any] | None = None,
        *,
        key: str | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """The records nearest to a query vector, which must be in the answering version's space
        (its ``dim``, its model): pin ``version`` when the traffic is split between models."""
        _no_other_arguments("similarity_search_by_vector", kwargs)
        return [doc for doc, _ in self._search(None, embedding, k, filter, key)]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        return _cosine_relevance

    def _search(
        self,
        text: str | None,
        vector: list[float] | None,
        k: int,
        filter: dict[str, Any] | None,
        key: str | None,
    ) -> list[tuple[Document, float]]:
        try:
            answer = self.client.search(
                self.collection,
                text=text,
                vector=vector,
                k=k,
                kind=self.kind,
                version=self.version,
                key=key,
                min_seq=self._written_seq or None,
                filter=filter,
            )
        except UnknownKind:
            return []  # no record of this kind yet: an empty store
        if not answer.hits:
            return []
        # a hit carries the record's fields (as the filter saw them), not its text: read the texts
        found = self.client.get_records(self.collection, [hit.id for hit in answer.hits], kind=self.kind)
        texts = {record.id: record.text for record in found.records}
        results = []
        for hit in answer.hits:
            if hit.id not in texts:
                continue  # deleted since the search
            metadata = dict(hit.fields)
            if self.version_metadata:
                metadata[VERSION_KEY] = hit.version or answer.version
                metadata[REQUEST_ID_KEY] = answer.request_id
            results.append((Document(id=hit.id, page_content=texts[hit.id], metadata=metadata), hit.score))
        return results
