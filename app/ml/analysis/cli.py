"""`ovozly analyze TRANSCRIPT.json`: the worker's analyzer on a file, contract JSON out."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from app.ml.analysis import (
    AnalysisError,
    AnalysisSettings,
    build_analyzer,
    insight_to_contract_dict,
)
from app.ml.analysis.transcript_json import transcript_from_json


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="analyse a transcript JSON file and print analysis, metrics and segments",
        description='Reads {"segments": [{"speaker", "start", "end", "text", "channel"}]} and '
        "prints the contract's Analysis, CallMetrics and Segment shapes as JSON. Settings come "
        "from the environment (ANALYSIS_BACKEND, REDACT_PII, ...).",
    )
    parser.add_argument("transcript", type=Path, help="transcript JSON file, or - for stdin")
    parser.add_argument("--indent", type=int, default=2, help="JSON indent (0 for one line)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    path: Path = args.transcript
    try:
        raw = sys.stdin.read() if str(path) == "-" else path.read_text("utf-8")
        data = json.loads(raw)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        print(f"ovozly analyze: cannot read {path}: {error}", file=sys.stderr)
        return 2
    try:
        insight = build_analyzer(AnalysisSettings()).analyze(transcript_from_json(data))
    except AnalysisError as error:
        print(f"ovozly analyze: {error.message}", file=sys.stderr)
        return 1
    indent = args.indent or None
    print(json.dumps(insight_to_contract_dict(insight), ensure_ascii=False, indent=indent))
    return 0
