"""The alias file's history as a tamper-evident chain, signed with the store's key.

Each event records ``prev``, the BLAKE3 digest of the event before it (None for the first), and, with a
signing key, ``signature``: HMAC-SHA256 over the event and the name it belongs to. The aliases are what
replaying the history gives (promote pushes a version; rollback pops back to the version it names;
adopt sets a stack, when a key first signs a history written without one), so an edited alias, a
removed, reordered or altered event, or a history copied from another name fails the check.
"""

from ml_toolbox.store import _io
from ml_toolbox.store.errors import SignatureError, StoreError


def _digest(event):
    return _io.digest_bytes(_io.canonical_json(event), "blake3")


def _signed_part(name, event):
    return {"name": name, **{k: v for k, v in event.items() if k != "signature"}}


def append(payload, name, event, key):
    """Chain ``event`` after the last one of ``payload["history"]`` (and sign it), then append it."""
    history = payload["history"]
    event["prev"] = _digest(history[-1]) if history else None
    if key:
        event["signature"] = _io.sign(key, _signed_part(name, event))
    history.append(event)


def replay(history, path):
    """The alias stacks that ``history`` leaves, or a SignatureError naming the first event that does
    not follow from the ones before it."""
    stacks = {}
    for i, event in enumerate(history):
        alias, action, to = event.get("alias"), event.get("action"), event.get("to")
        stack = stacks.setdefault(alias, [])
        if action == "adopt":
            stacks[alias] = list(event.get("stack") or [])
        elif action == "promote" and event.get("from") == (stack[-1] if stack else None):
            stack.append(to)
        elif action == "rollback" and stack and stack[-1] == event.get("from") and to in stack[:-1]:
            stack.pop()
            while stack[-1] != to:
                stack.pop()
        else:
            raise SignatureError(f"{path!r}: history event {i} ({action} of {alias!r} to {to!r}) does not follow "
                                 "from the events before it; the alias file was altered.", path)
    return {alias: stack for alias, stack in stacks.items() if stack}


def check(payload, path, name, key):
    """Check the chain (always, where recorded), the signatures (with ``key``) and that the aliases are
    what the history gives. A history written before chaining, without a key, is accepted as it is."""
    history = payload["history"]
    chained = any("prev" in event for event in history)
    if key is None and not chained:
        return
    previous = None
    for i, event in enumerate(history):
        if event.get("prev") != (None if previous is None else _digest(previous)):
            raise SignatureError(f"{path!r}: history event {i} does not chain to the one before it (events "
                                 "removed, reordered or altered).", path, "an intact chain", i)
        if key is not None:
            signature = event.get("signature")
            if not isinstance(signature, str):
                raise SignatureError(
                    f"{path!r}: history event {i} is not signed, and this store requires signed aliases (a "
                    "signing key is set). If this history was written before the store had a key, sign it as "
                    "it stands with store.sign_aliases(name).", path, "a signature", None)
            if not _io.signature_matches(key, _signed_part(name, event), signature):
                raise SignatureError(f"{path!r}: history event {i} has a signature that does not match the "
                                     "signing key (altered, or signed with another key).", path,
                                     "a signature made with this key", signature)
        previous = event
    stacks = {alias: entry["stack"] for alias, entry in payload["aliases"].items() if entry["stack"]}
    if replay(history, path) != stacks:
        raise SignatureError(f"{path!r}: the aliases {stacks} are not what the history gives; the alias "
                             "file was altered.", path, "aliases that follow from the history", stacks)


def parse(payload, path):
    """The alias file's structure, checked (StoreError naming the file otherwise)."""
    def bad(what):
        return StoreError(f"The alias file {path!r} is malformed: {what}.")

    if not isinstance(payload, dict) or not isinstance(payload.get("aliases", {}), dict) \
            or not isinstance(payload.get("history", []), list):
        raise bad("expected an object with 'aliases' (an object) and 'history' (a list)")
    payload.setdefault("aliases", {})
    payload.setdefault("history", [])
    for alias, entry in payload["aliases"].items():
        stack = entry.get("stack") if isinstance(entry, dict) else None
        if not isinstance(stack, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in stack):
            raise bad(f"alias {alias!r} has no 'stack' list of version numbers")
    for i, event in enumerate(payload["history"]):
        if not isinstance(event, dict) or not isinstance(event.get("alias"), str):
            raise bad(f"history event {i} is not an object naming its alias")
    deleted = payload.get("deleted", [])
    if not isinstance(deleted, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in deleted):
        raise bad("its 'deleted' is not a list of version numbers")
    return payload
