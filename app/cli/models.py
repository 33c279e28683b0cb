"""`ovozly models list | fetch | verify`: the models the current settings need, on purpose.

    ovozly models list      # what the settings need, where, size, present, hashes
    ovozly models fetch     # download the missing Hub models into MODELS_DIR, verified
    ovozly models verify    # every file against its published digest; exit 1 on a problem

Settings come from the environment (and `.env`) exactly as the worker reads them, so the
list is what a worker with this environment loads.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pydantic import ValidationError

from app.ml.models.catalog import (
    ModelCatalogError,
    ModelSource,
    ModelSpec,
    ModelStatus,
    human_size,
    inspect_model,
    required_models,
)


def register(subparsers: Any) -> None:
    models = subparsers.add_parser(
        "models", help="list, fetch or verify the models the current settings need"
    )
    actions = models.add_subparsers(dest="models_command", required=True)
    listing = actions.add_parser("list", help="what the settings need: where, size, present, hash")
    listing.add_argument("--no-hash", action="store_true", help="check sizes only (fast)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=cmd_models_list)
    fetch = actions.add_parser("fetch", help="download the missing Hub models into MODELS_DIR")
    fetch.add_argument("--json", action="store_true", help="machine-readable summary")
    fetch.set_defaults(handler=cmd_models_fetch)
    verify = actions.add_parser("verify", help="hash every model file; exit 1 on any problem")
    verify.add_argument("--json", action="store_true", help="machine-readable output")
    verify.set_defaults(handler=cmd_models_verify)


def _specs() -> tuple[list[ModelSpec], str | None, str]:
    """The catalogue for the environment's settings, the Hub token and MODELS_DIR."""
    from app.ml.analysis.settings import AnalysisSettings
    from app.ml.settings import PipelineSettings

    pipeline = PipelineSettings()
    token = pipeline.hf_token.get_secret_value() if pipeline.hf_token else None
    specs = required_models(pipeline, AnalysisSettings())
    return specs, token, str(pipeline.models_dir.expanduser().resolve())


def _settings_error(exc: Exception) -> int:
    print(f"error: the settings are invalid: {exc}", file=sys.stderr)
    return 2


def cmd_models_list(args: argparse.Namespace) -> int:
    try:
        specs, _, models_dir = _specs()
    except (ValidationError, ModelCatalogError) as exc:
        return _settings_error(exc)
    statuses = [inspect_model(spec, hash_files=not args.no_hash) for spec in specs]
    if args.json:
        print(json.dumps(_as_json(statuses, models_dir), indent=2))
    else:
        _print_table(statuses, models_dir)
    return 0


def cmd_models_verify(args: argparse.Namespace) -> int:
    try:
        specs, _, models_dir = _specs()
    except (ValidationError, ModelCatalogError) as exc:
        return _settings_error(exc)
    statuses = [inspect_model(spec) for spec in specs]
    if args.json:
        print(json.dumps(_as_json(statuses, models_dir), indent=2))
    else:
        _print_table(statuses, models_dir)
    return 0 if all(status.ok for status in statuses) else 1


def cmd_models_fetch(args: argparse.Namespace) -> int:
    from app.ml.models.fetch import ModelFetchError, TerminalProgress, fetch_model

    try:
        specs, token, models_dir = _specs()
    except (ValidationError, ModelCatalogError) as exc:
        return _settings_error(exc)
    out = sys.stderr if args.json else sys.stdout
    failures: list[str] = []
    summary: list[dict[str, Any]] = []
    print(f"Fetching the models the settings need into {models_dir}", file=out, flush=True)
    for spec in specs:
        if spec.pinned_files and not inspect_model(spec).ok:
            _assemble_bundled(spec, out)
        if not spec.fetchable:
            status = inspect_model(spec)
            state = "ok" if status.ok else "; ".join(status.all_problems)
            print(f"  {spec.role}: {spec.name} ({spec.source.value}): {state}", file=out)
            if not status.ok:
                failures.append(f"{spec.name}: {state}")
            summary.append({"role": spec.role, "name": spec.name, "ok": status.ok})
            continue
        print(f"  {spec.role}: {spec.name} from {spec.repo_id}", file=out, flush=True)
        try:
            result = fetch_model(spec, token=token, progress=TerminalProgress(out))
        except ModelFetchError as exc:
            print(f"    error: {exc}", file=out, flush=True)
            failures.append(f"{spec.name}: {exc}")
            summary.append({"role": spec.role, "name": spec.name, "ok": False, "error": str(exc)})
            continue
        print(
            f"    ok: {len(result.files)} files verified at {result.commit or spec.revision} "
            f"({human_size(result.downloaded_bytes)} downloaded)",
            file=out,
            flush=True,
        )
        summary.append(
            {
                "role": spec.role,
                "name": spec.name,
                "ok": True,
                "commit": result.commit,
                "downloadedBytes": result.downloaded_bytes,
                "resumedFrom": {f.path: f.resumed_from for f in result.files if f.resumed_from},
            }
        )
    if args.json:
        print(json.dumps({"modelsDir": models_dir, "models": summary}, indent=2))
    if failures:
        print(f"{len(failures)} model(s) not ready; see above", file=sys.stderr)
        return 1
    print("Every model the settings need is present and verified.", file=out)
    return 0


def _assemble_bundled(spec: ModelSpec, out: Any) -> None:
    """A model assembled at install from local packages (no network): assemble it now."""
    from app.ml.stt.base import SttError
    from app.ml.stt.bundled import BUNDLED_MODELS, assemble, model_dir

    for bundled in BUNDLED_MODELS.values():
        if model_dir(bundled) == spec.location:
            print(f"  {spec.role}: assembling {spec.name} from its packages", file=out, flush=True)
            try:
                assemble(bundled)
            except SttError as exc:
                print(f"    error: {exc.message}", file=out, flush=True)
            return


def _print_table(statuses: list[ModelStatus], models_dir: str) -> None:
    print(f"Models the current settings need (MODELS_DIR={models_dir}):")
    header = f"  {'ROLE':<20} {'MODEL':<44} {'SOURCE':<12} {'SIZE':>9}  {'PRESENT':<8} HASH"
    print(header)
    for status in statuses:
        spec = status.spec
        size = "-" if spec.source is ModelSource.HOSTED else human_size(status.size_bytes)
        if spec.source is not ModelSource.HOSTED and not status.present:
            size = human_size(status.expected_size_bytes) if status.files else "?"
        present = "yes" if status.present else "NO"
        print(
            f"  {spec.role:<20} {spec.name[:44]:<44} {spec.source.value:<12} {size:>9}  "
            f"{present:<8} {status.hash_state}"
        )
        if spec.location is not None:
            print(f"  {'':<20} at {spec.location}")
        for problem in status.all_problems:
            print(f"  {'':<20} ! {problem}")
    missing = [s for s in statuses if not s.present]
    broken = [s for s in statuses if s.present and not s.ok]
    if not missing and not broken:
        print("All present" + (" and intact." if all(s.hashed for s in statuses) else "."))
        return
    if missing:
        fetchable = [s.spec.name for s in missing if s.spec.fetchable]
        if fetchable:
            print(f"Missing: {', '.join(fetchable)}: run `ovozly models fetch`.")
        others = [s.spec.name for s in missing if not s.spec.fetchable]
        if others:
            print(f"Missing and not fetchable: {', '.join(others)} (see the problems above).")
    if broken:
        print(
            f"Damaged: {', '.join(s.spec.name for s in broken)}; "
            "`ovozly models fetch` replaces Hub files that fail their hash."
        )


def _as_json(statuses: list[ModelStatus], models_dir: str) -> dict[str, Any]:
    return {
        "modelsDir": models_dir,
        "models": [
            {
                "role": s.spec.role,
                "name": s.spec.name,
                "source": s.spec.source.value,
                "location": str(s.spec.location) if s.spec.location else None,
                "repoId": s.spec.repo_id,
                "sizeBytes": s.size_bytes,
                "expectedSizeBytes": s.expected_size_bytes,
                "present": s.present,
                "hash": s.hash_state,
                "ok": s.ok,
                "problems": s.all_problems,
            }
            for s in statuses
        ],
    }
