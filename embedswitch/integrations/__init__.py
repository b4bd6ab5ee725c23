"""Adapters that let other frameworks use an embedswitch server through ``embedswitch.Client``.

Each module needs its own optional extra and is imported by name, never from here:
``embedswitch.integrations.langchain`` (``pip install 'embedswitch[langchain]'``).
"""
