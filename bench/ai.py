"""(k) AI: offline analysis throughput — the labelled test set (222 pt-BR and English CRM
messages, some with earlier messages as context) analysed over and over by one
`OfflineAnalyzer` in this process, so on one core; no database. Bar: ≥ 2,000 messages/s.
The first call, which loads the VADER and LeIA lexicons, is timed on its own."""

from __future__ import annotations

import json
import time
from pathlib import Path

from bench.common import CpuMeter, Results, Scale, say

DATA = Path(__file__).resolve().parent.parent / "tests/application/data/labelled_messages.jsonl"
BAR = 2_000.0


def bench_ai(scale: Scale, results: Results) -> None:
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    messages = [(row["text"], tuple(row.get("context", ()))) for row in rows]
    started = time.perf_counter()
    from application.ai.offline import OfflineAnalyzer

    analyzer = OfflineAnalyzer()
    analyzer.analyse(messages[0][0])
    cold = time.perf_counter() - started
    say(f"  import + lexicon load + first analysis: {cold * 1e3:.0f} ms")
    results.add("ai", "offline analyzer cold start", cold * 1e3, "ms")

    seconds = 2.0 if scale.quick else 10.0
    analysed = 0
    with CpuMeter() as cpu:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            for text, context in messages:
                analyzer.analyse(text, context=context)
            analysed += len(messages)
    assert cpu.delta is not None
    rate = analysed / cpu.delta.wall
    say(f"  {analysed:,} messages in {cpu.delta.wall:.1f} s: {rate:,.0f} messages/s")
    say(f"  {cpu.describe(analysed, 'message')}")
    results.add(
        "ai",
        "offline analysis, one core",
        rate,
        "msg/s",
        bar=f">= {BAR:,.0f}/s",
        meets=rate >= BAR,
        extra=cpu.as_dict(analysed),
    )
