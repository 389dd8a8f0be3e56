"""Export store versions to an MLflow model registry, and keep aliases in step on request.

For teams that already run MLflow's model registry: :func:`export_version` registers a version of a
:class:`~ml_toolbox.persistence.PipelinePersistence` store as a version of an MLflow registered
model -- the pipeline as an ``mlflow.sklearn`` model, logged in a run that carries the version's
metrics, parameters and tags, and tagged with the store's name, version and digest.
:func:`sync_aliases` copies aliases (``production``, ``staging``...) from the store to the registry,
or from the registry to the store.

The store stays the source of truth for what it guards: an export loads the version through the
store (its digests, and its signature when the store has a signing key, are checked first), and an
alias copied from MLflow into the store moves through the store's own
:meth:`~ml_toolbox.persistence.PipelinePersistence.promote`, so its quality gates run and the move is
recorded in the store's signed alias history. A registry version the store did not export (or whose
digest differs from the store's) is never promoted in the store.

Everything here needs the ``mlflow`` extra (``pip install 'ml_toolbox[mlflow]'``); it is imported
only when a function is called. Only the store's public API is used.

Examples
--------
>>> from ml_toolbox.mlflow_registry import export_version, sync_aliases
>>> mv = export_version("models/", "churn", "production",              # doctest: +SKIP
...                     tracking_uri="sqlite:///mlflow.db")
>>> sync_aliases("models/", "churn", direction="to_mlflow",             # doctest: +SKIP
...              tracking_uri="sqlite:///mlflow.db")
{'production': (3, '1')}
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from typing import Any

from ml_toolbox.persistence import GateError, PersistenceError, PipelinePersistence

__all__ = ["export_version", "sync_aliases", "find_exported", "RegistrySyncError",
           "TAG_NAME", "TAG_VERSION", "TAG_DIGEST", "TAG_STORE", "DEFAULT_EXPERIMENT"]

TAG_NAME = "ml_toolbox.name"
"""Model version tag: the name of the version in the store."""
TAG_VERSION = "ml_toolbox.version"
"""Model version tag: the version number in the store."""
TAG_DIGEST = "ml_toolbox.digest"
"""Model version tag: ``blake3:<hex>`` of the store's artifact (the store's default digest;
``sha256:<hex>`` for a version saved with SHA-256, ``xxh3_128:<hex>`` when neither was recorded)."""
TAG_STORE = "ml_toolbox.store"
"""Model version tag: the store's directory."""
TAG_SIGNED = "ml_toolbox.signed"
"""Model version tag: ``"true"`` when the store version is signed."""
DEFAULT_EXPERIMENT = "ml_toolbox exports"

_MLFLOW_ALIAS = re.compile(r"^[\w\-]+$")
_MLFLOW_RESERVED_ALIAS = re.compile(r"^(latest|[vV]\d+)$", re.IGNORECASE)
_EXPORTABLE_KINDS = ("pipeline", "model", "object")
_BATCH = 100  # MLflow's log_batch takes at most 100 params (and 1000 metrics) a call


class RegistrySyncError(PersistenceError, ValueError):
    """An export or alias sync refused before anything changed: the message says why and what to do."""


def _mlflow():
    try:
        import mlflow
        import mlflow.sklearn  # noqa: F401  (the flavour this module writes)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "ml_toolbox.mlflow_registry needs mlflow, which is not installed. Install the 'mlflow' "
            "extra: pip install 'ml_toolbox[mlflow]'") from exc
    return mlflow


def _client(client, tracking_uri, registry_uri):
    if client is not None:
        if tracking_uri is not None or registry_uri is not None:
            raise TypeError("Pass either client= or tracking_uri=/registry_uri=, not both.")
        return client
    mlflow = _mlflow()
    return mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)


def _digest(manifest):
    files = manifest.get("files", {})
    entry = files.get(manifest.get("artifact")) or next(iter(files.values()), {})
    for algorithm in ("blake3", "sha256", "xxh3_128"):  # the cryptographic ones first
        if entry.get(algorithm):
            return f"{algorithm}:{entry[algorithm]}"
    return ""


def _requirements(manifest):
    """pip requirements of the exported model: the library versions it was saved under, so MLflow
    need not guess them (its guess imports and runs the model in a subprocess, seconds a save)."""
    env = manifest.get("environment", {})
    pins = [f"{dist}=={env[dist]}" for dist in ("scikit-learn", "numpy", "pandas", "joblib")
            if env.get(dist)]
    if str(manifest.get("object_type", "")).startswith("ml_toolbox.") and env.get("ml_toolbox"):
        pins.append(f"ml_toolbox=={env['ml_toolbox']}")
    return pins


def _registered_name(name, registered_model):
    registered = name if registered_model is None else registered_model
    if not isinstance(registered, str) or not registered.strip() or "'" in registered:
        raise RegistrySyncError(
            f"Invalid registered model name {registered!r}: a non-empty string without single quotes "
            "is expected.")
    return registered


def _is_missing(exc):
    return getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"


def find_exported(name: str, version_number: int, digest: str, *, registered_model: str | None = None,
                  client: Any = None, tracking_uri: str | None = None,
                  registry_uri: str | None = None) -> Any:
    """Return the MLflow model version exported from a store version with that digest, or None.

    Parameters
    ----------
    name : str
        The name in the store.
    version_number : int
        The version number in the store.
    digest : str
        The ``ml_toolbox.digest`` tag the export carries (``blake3:<hex>``, or the digest recorded).
    registered_model : str, default=None
        The registered model's name in MLflow (default: ``name``).
    client : mlflow.MlflowClient, default=None
        A client to use; default one for ``tracking_uri`` / ``registry_uri``.
    tracking_uri, registry_uri : str, default=None
        Where MLflow's tracking and registry stores are (default: MLflow's own settings).

    Returns
    -------
    mlflow.entities.model_registry.ModelVersion or None
        The model version whose ``ml_toolbox`` tags name this store version and digest; None when
        it was not exported.

    Examples
    --------
    >>> version = find_exported("churn", 4, "blake3:9f2c...",             # doctest: +SKIP
    ...                         tracking_uri="sqlite:///mlflow.db")
    >>> version.tags["ml_toolbox.version"]                                # doctest: +SKIP
    '4'
    """
    client = _client(client, tracking_uri, registry_uri)
    registered = _registered_name(name, registered_model)
    wanted = {TAG_NAME: name, TAG_VERSION: str(version_number), TAG_DIGEST: digest}
    for mv in client.search_model_versions(f"name='{registered}'"):
        if all(mv.tags.get(k) == v for k, v in wanted.items()):
            return mv
    return None


def export_version(store: PipelinePersistence | str | os.PathLike, name: str,
                   version: int | str | None = None, *, registered_model: str | None = None,
                   experiment: str = DEFAULT_EXPERIMENT, client: Any = None,
                   tracking_uri: str | None = None, registry_uri: str | None = None) -> Any:
    """Register version ``version`` of ``name`` in ``store`` as a version of an MLflow registered model.

    The version is loaded through the store (digests checked, and its signature when the store has a
    signing key: a version that fails is not exported) and written as an ``mlflow.sklearn`` model
    (pickle serialization; pip requirements pinned to the library versions it was saved under) in a
    new run of ``experiment`` whose metrics, params and tags are the version's. The model version
    carries the version's tags and message, and the tags ``ml_toolbox.name``, ``ml_toolbox.version``,
    ``ml_toolbox.digest`` (``blake3:<hex>`` of the artifact, or the digest the manifest recorded), ``ml_toolbox.store`` and
    ``ml_toolbox.signed``. Exporting a version already exported (same name, version and digest) does
    nothing and returns the existing model version.

    Parameters
    ----------
    store : PipelinePersistence or path
        The store, or its directory.
    name : str
        The name in the store.
    version : int or str, default=None
        A version number, an alias, or None for the latest.
    registered_model : str, default=None
        The registered model's name in MLflow (created when missing). Default: ``name``.
    experiment : str, default="ml_toolbox exports"
        The MLflow experiment the export's run is logged in (created when missing).
    client : mlflow.MlflowClient, default=None
        A client to use; default one for ``tracking_uri`` / ``registry_uri``.
    tracking_uri, registry_uri : str, default=None
        Where MLflow's tracking and registry stores are, e.g. ``"sqlite:///mlflow.db"`` (default:
        MLflow's own settings, ``MLFLOW_TRACKING_URI``).

    Returns
    -------
    mlflow.entities.model_registry.ModelVersion
        Its ``version`` is MLflow's version number (a string); ``source`` is where the model is.

    Raises
    ------
    RegistrySyncError
        The version is a pipeline state or a configuration (only estimators are exported), or the
        loaded object has no ``predict``.
    IntegrityError, SignatureError
        From the store's load: the version was not exported.
    VersionNotFoundError
        Unknown name, version or alias.

    Examples
    --------
    >>> mv = export_version("models/", "churn", "production",              # doctest: +SKIP
    ...                     tracking_uri="sqlite:///mlflow.db")
    >>> mv.tags["ml_toolbox.version"], mv.version                            # doctest: +SKIP
    ('3', '1')
    >>> import mlflow                                                        # doctest: +SKIP
    >>> model = mlflow.sklearn.load_model("models:/churn/1")                 # doctest: +SKIP
    """
    persistence = PipelinePersistence.from_location(store)
    number = persistence.resolve(name, version)
    manifest = persistence.manifest(name, number)
    registered = _registered_name(name, registered_model)
    kind = manifest.get("kind", "pipeline")
    if kind not in _EXPORTABLE_KINDS:
        raise RegistrySyncError(
            f"Cannot export {name!r} version {number} to MLflow: it holds a {kind}, and only fitted "
            f"estimators (pipelines, models) are exported as mlflow.sklearn models.")
    client = _client(client, tracking_uri, registry_uri)
    digest = _digest(manifest)
    existing = find_exported(name, number, digest, registered_model=registered, client=client)
    if existing is not None:
        return existing
    obj = persistence.load(name, number)  # verified (and signature-checked) before anything is written
    if not hasattr(obj, "predict"):
        raise RegistrySyncError(
            f"Cannot export {name!r} version {number} to MLflow: its {type(obj).__name__} has no "
            "predict method, which an mlflow.sklearn model needs.")
    mlflow = _mlflow()
    from mlflow.entities import Metric, Param
    from mlflow.exceptions import MlflowException
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    tags = {str(k): str(v) for k, v in (manifest.get("tags") or {}).items()}
    store_tags = {TAG_NAME: name, TAG_VERSION: str(number), TAG_DIGEST: digest,
                  TAG_STORE: str(persistence.path),
                  TAG_SIGNED: str(bool(manifest.get("signature"))).lower()}
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found is not None else client.create_experiment(experiment)
    run = client.create_run(experiment_id, tags={**tags, **store_tags,
                                                 "mlflow.runName": f"{name} v{number}"})
    run_id = run.info.run_id
    try:
        now = int(time.time() * 1000)
        metrics = [Metric(str(k), float(v), now, 0) for k, v in (manifest.get("metrics") or {}).items()]
        params = [Param(str(k), ("" if v is None else str(v))[:MAX_PARAM_VAL_LENGTH])
                  for k, v in (manifest.get("params") or {}).items()]
        for start in range(0, max(len(params), len(metrics), 1), _BATCH):
            client.log_batch(run_id, metrics=metrics[start:start + _BATCH],
                             params=params[start:start + _BATCH])
        if manifest.get("message"):
            client.set_tag(run_id, "mlflow.note.content", str(manifest["message"]))
        with tempfile.TemporaryDirectory(prefix="ml_toolbox_mlflow_") as tmp:
            local = os.path.join(tmp, "model")
            mlflow.sklearn.save_model(obj, local, serialization_format="pickle",
                                      pip_requirements=_requirements(manifest))
            client.log_artifacts(run_id, local, artifact_path="model")
        try:
            client.get_registered_model(registered)
        except MlflowException as exc:
            if not _is_missing(exc):
                raise
            client.create_registered_model(registered, description=f"Exported from the ml_toolbox store "
                                                                   f"{persistence.path}, name {name!r}.")
        mv = client.create_model_version(
            registered, source=f"{run.info.artifact_uri}/model", run_id=run_id,
            tags={**tags, **store_tags}, description=manifest.get("message") or None)
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id)
    return mv


def _check_mlflow_alias(alias):
    if not _MLFLOW_ALIAS.match(alias) or _MLFLOW_RESERVED_ALIAS.match(alias):
        raise RegistrySyncError(
            f"The store's alias {alias!r} cannot be an MLflow alias: MLflow takes letters, digits, '_' "
            "and '-', and reserves 'latest' and 'v<number>'. Nothing was changed; pass aliases= to "
            "sync the others.")


def sync_aliases(store: PipelinePersistence | str | os.PathLike, name: str, *, direction: str,
                 registered_model: str | None = None, aliases: list[str] | str | None = None,
                 gates: Any = None, reason: str | None = None, experiment: str = DEFAULT_EXPERIMENT,
                 client: Any = None, tracking_uri: str | None = None,
                 registry_uri: str | None = None) -> dict:
    """Copy aliases between the store and an MLflow registered model, in the direction asked.

    ``direction="to_mlflow"``: each alias of ``name`` in the store points the MLflow alias of the
    same name at the model version exported from the store version it holds (exported first, with
    :func:`export_version`, when it was not yet). MLflow aliases the store lacks are left alone.

    ``direction="from_mlflow"``: each alias of the registered model moves the store's alias of the
    same name, through :meth:`PipelinePersistence.promote <ml_toolbox.persistence.PipelinePersistence.promote>`
    with ``gates``, to the store version the model version was exported from. Everything is checked
    before any alias moves: a model version the store did not export (no ``ml_toolbox`` tags, another
    name, or a digest other than the store version's) raises :class:`RegistrySyncError`, and a failed
    gate raises :class:`~ml_toolbox.persistence.GateError` naming every failure; then no alias moved.
    Aliases already in step are left as they are (no history entry).

    Parameters
    ----------
    store : PipelinePersistence or path
        The store (or its location).
    name : str
        The name in the store.
    direction : {"to_mlflow", "from_mlflow"}
        Which side's aliases are copied to the other.
    registered_model : str, default=None
        The registered model's name in MLflow. Default: ``name``.
    aliases : list of str, default=None
        Only these aliases (default: all of the source's).
    gates : mapping or list, default=None
        ``from_mlflow`` only: the quality gates each promotion in the store must pass, as for
        ``promote`` (e.g. ``["accuracy>=current"]``).
    reason : str, default=None
        ``from_mlflow`` only: recorded in the store's alias history (after the MLflow version synced).
    experiment : str, default="ml_toolbox exports"
        ``to_mlflow`` only: where :func:`export_version` logs its runs.
    client : mlflow.MlflowClient, default=None
        As for :func:`export_version`.
    tracking_uri, registry_uri : str, default=None
        As for :func:`export_version`.

    Returns
    -------
    dict
        ``to_mlflow``: alias -> (store version, MLflow version); ``from_mlflow``: alias -> store
        version. Only the aliases synced.

    Raises
    ------
    RegistrySyncError, GateError, VersionNotFoundError
        Before any alias moved.

    Examples
    --------
    >>> sync_aliases("models/", "churn", direction="from_mlflow",         # doctest: +SKIP
    ...              gates=["accuracy>=current"], tracking_uri="sqlite:///mlflow.db")
    {'production': 4}
    """
    if direction not in ("to_mlflow", "from_mlflow"):
        raise ValueError(f"direction must be 'to_mlflow' or 'from_mlflow'; got {direction!r}.")
    if direction == "to_mlflow" and (gates is not None or reason is not None):
        raise TypeError("gates= and reason= apply to direction='from_mlflow' only (they are the "
                        "store's; MLflow's registry has no gates).")
    persistence = PipelinePersistence.from_location(store)
    registered = _registered_name(name, registered_model)
    client = _client(client, tracking_uri, registry_uri)
    if direction == "to_mlflow":
        return _to_mlflow(persistence, name, registered, aliases, experiment, client)
    return _from_mlflow(persistence, name, registered, aliases, gates, reason, client)


def _pick(available, wanted, where):
    if wanted is None:
        return dict(available)
    if isinstance(wanted, str):
        wanted = [wanted]
    missing = [a for a in wanted if a not in available]
    if missing:
        known = ", ".join(sorted(available)) or "none"
        raise RegistrySyncError(f"{where} has no alias {', '.join(map(repr, missing))}. Its aliases: "
                                f"{known}. Nothing was changed.")
    return {a: available[a] for a in wanted}


def _to_mlflow(store, name, registered, aliases, experiment, client):
    chosen = _pick(store.aliases(name), aliases, f"The store's {name!r}")
    for alias in chosen:
        _check_mlflow_alias(alias)
    out = {}
    for alias, number in sorted(chosen.items()):
        mv = export_version(store, name, number, registered_model=registered, experiment=experiment,
                            client=client)
        client.set_registered_model_alias(registered, alias, str(mv.version))
        out[alias] = (number, str(mv.version))
    return out


def _from_mlflow(store, name, registered, aliases, gates, reason, client):
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(registered)
    except MlflowException as exc:
        if _is_missing(exc):
            raise RegistrySyncError(f"MLflow has no registered model {registered!r}. Nothing was "
                                    "changed.") from exc
        raise
    chosen = _pick(dict(model.aliases or {}), aliases, f"MLflow's registered model {registered!r}")
    plan = {}
    for alias, mlflow_version in sorted(chosen.items()):
        mv = client.get_model_version(registered, str(mlflow_version))
        tags = mv.tags or {}
        where = f"MLflow's {registered!r} version {mv.version} (alias {alias!r})"
        if tags.get(TAG_NAME) != name or not str(tags.get(TAG_VERSION, "")).isdigit():
            raise RegistrySyncError(
                f"{where} was not exported from the store's {name!r} (its tags {TAG_NAME}="
                f"{tags.get(TAG_NAME)!r}, {TAG_VERSION}={tags.get(TAG_VERSION)!r}): the store can "
                "only point an alias at a version it holds. Nothing was changed.")
        number = int(tags[TAG_VERSION])
        ours = _digest(store.manifest(name, number))
        if tags.get(TAG_DIGEST) != ours:
            raise RegistrySyncError(
                f"{where} says it is the store's {name!r} version {number}, but its digest "
                f"{tags.get(TAG_DIGEST)!r} is not the store's ({ours!r}): it came from another store "
                "or was altered. Nothing was changed.")
        plan[alias] = number
    current = store.aliases(name)
    moves = {a: n for a, n in plan.items() if current.get(a) != n}
    failed = [f"{alias!r}: {message}" for alias, number in sorted(moves.items())
              for message in store.check_gates(name, number, alias, gates)]
    if failed:
        raise GateError(f"Refusing to sync MLflow's aliases of {registered!r} into the store's "
                        f"{name!r}: " + "; ".join(failed) + ". No alias was moved.", failed)
    for alias, number in sorted(moves.items()):
        note = f"synced from MLflow registered model {registered!r} version {chosen[alias]}"
        store.promote(name, number, alias, gates=gates, reason=f"{reason}; {note}" if reason else note)
    return plan
