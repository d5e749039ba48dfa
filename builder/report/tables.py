"""The report's tables as plain rows of text, shared by the Markdown and HTML renderings."""

from __future__ import annotations

from dataclasses import dataclass

from .schema import Check, HotExperts, Report, Routing


@dataclass(frozen=True)
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]


def _verdict(checks: list[Check], model: str, configuration: str, metrics: tuple[str, ...]) -> str:
    found = [c for c in checks if c.model == model and c.configuration == configuration and c.metric in metrics]
    if not found:
        return "–"
    return "ok" if all(c.passed for c in found) else "**REGRESSED**"


def routing_text(routing: Routing | None) -> str:
    if routing is None:
        return "–"
    if routing.mode == "none":
        return "none (dense)"
    return routing.mode + ("" if routing.controlled else " (uncontrolled)")


def distinct_text(routing: Routing | None) -> str:
    if routing is None or not routing.distinct_per_32:
        return "n/a"
    routed = [d for d in routing.distinct_per_32 if d > 0]  # dense layers have none
    return f"{sum(routed) / len(routed):.2f} ({min(routed):.2f}–{max(routed):.2f})" if routed else "0"


def summary(report: Report) -> list[str]:
    failed = [c for c in report.checks if not c.passed]
    head = "PASSED" if report.passed else f"FAILED: {len(failed)} metric(s) regressed"
    lines = [f"{head} — {len(report.checks)} checks, variant {report.variant}, thresholds {report.thresholds}"]
    lines += [c.describe() for c in failed]
    return lines


def builds_table(report: Report) -> Table:
    rows = [[role, b.variant, b.version, b.pin, ", ".join(b.patches) or "none", b.builder]
            for role, b in report.builds.items()]
    return Table("Builds", ["role", "variant", "version", "pin", "patches", "builder"], rows)


def setup_table(report: Report) -> Table:
    m, s = report.machine, report.settings
    rows = [
        ["CPU", f"{m.cpu} ({m.cores} cores)"],
        ["GPU", "; ".join(m.gpus) or "none"],
        ["OS", m.os],
        ["threads", str(s.threads)],
        ["placement", " ".join(s.placement) or "(defaults)"],
        ["flags", " ".join(s.flags)],
        ["corpus", s.corpus],
        ["accuracy", f"llama-perplexity -c {s.ctx} --chunks {s.chunks}"],
        ["decode", f"llama-perplexity -b 1 -ub 1 -c {s.decode_ctx} --chunks {s.decode_chunks}"],
        ["llama-bench", f"-p {s.bench_pp} -n {s.bench_tg} -r {s.bench_reps}"],
        ["speed rounds", f"{s.repeats}, alternating the order of the sides"],
        ["routing (speed)", s.route],
    ]
    return Table("Machine and settings", ["", ""], rows)


def accuracy_table(report: Report) -> Table:
    rows = []
    for m in report.models:
        for a in m.accuracy:
            rows.append([m.name, a.configuration, " ".join(a.upstream_args) or "default", f"{a.upstream_ppl:.6g}",
                         f"{a.ppl:.6g}", f"{a.delta_ppl:+.4%}", f"{a.mean_kld:.6f}", f"{a.kld_p99:.6f}", f"{a.same_top:.3%}",
                         _verdict(report.checks, m.name, a.configuration, ("delta_ppl", "mean_kld", "same_top"))])
    return Table("Accuracy (vs upstream's logits, same placement and weight loading)",
                 ["model", "configuration", "loading", "PPL upstream", "PPL patched", "Δppl", "mean KLD", "KLD p99",
                  "same top", "verdict"], rows)


def _speed_metric(test: str) -> str:
    return "decode_ratio" if test == "decode" else f"{test[:2]}_ratio"


def speed_table(report: Report) -> Table:
    rows = []
    for m in report.models:
        for s in m.speed:
            rows.append([m.name, s.configuration, s.test, routing_text(m.routing), distinct_text(m.routing),
                         m.speed_reference or "–", f"{s.reference_ts:.2f}", f"{s.patched_ts:.2f}",
                         f"{s.ratio:.3f} ({s.ratio_min:.3f}–{s.ratio_max:.3f}, n={s.rounds})",
                         _verdict(report.checks, m.name, s.configuration, (_speed_metric(s.test),))])
    return Table("Speed (tokens/s, medians; ratio = patched ÷ reference per round)",
                 ["model", "configuration", "test", "routing", "distinct experts / 32 tok (layers)", "reference",
                  "reference t/s", "patched t/s", "ratio (min–max)", "verdict"], rows)


def hit_rate_text(hot: HotExperts) -> str:
    rates = [r for r in hot.hit_rate if r is not None]
    return f"{sum(rates) / len(rates):.1%} ({min(rates):.1%}–{max(rates):.1%})" if rates else "n/a"


def hot_table(report: Report) -> Table:
    rows = []
    for m in report.models:
        for h in m.hot:
            n_hot = [n for n in h.n_hot if n]
            span = f"{min(n_hot)}" if min(n_hot) == max(n_hot) else f"{min(n_hot)}–{max(n_hot)}"
            rows.append([m.name, h.configuration, str(h.budget_mib), f"{span} of {m.n_expert}",
                         hit_rate_text(h), h.profile])
    return Table("Hot experts (hit rate: share of the profile's routed selections that go to hot experts, by layer; "
                 "in-sample: the profile is the routing trace of the measured text)",
                 ["model", "configuration", "--moe-hot-mib", "hot experts per layer", "hit rate mean (min–max)", "profile"],
                 rows)


def models_table(report: Report) -> Table:
    rows = [[m.name, m.arch, "dense" if m.dense else f"{m.n_expert} experts, {m.n_expert_used} used",
             str(m.n_layer), m.path] for m in report.models]
    return Table("Models", ["model", "arch", "experts", "layers", "file"], rows)


def all_tables(report: Report) -> list[Table]:
    tables = [builds_table(report), setup_table(report), models_table(report), accuracy_table(report), speed_table(report)]
    if any(m.hot for m in report.models):
        tables.append(hot_table(report))
    return tables
