"""Pure figures: request summaries, medians of repeated runs, ratios, the targets of issues 8 and 16, the table.
No cluster, no clock: tests/unit/test_bench_report.py covers it."""

import statistics

from localcluster.cluster import WRITE_VERBS

READ_VERBS = frozenset({"GET", "LIST"})
# Reviews are POSTed but never stored: the API server answers who the client is or what it may do, and keeps nothing.
# They are counted apart from writes (the guard's SelfSubjectReview is the one request of a no-op that is not a read).
REVIEW_RESOURCES = frozenset(
    {
        "selfsubjectreviews",
        "selfsubjectaccessreviews",
        "selfsubjectrulesreviews",
        "subjectaccessreviews",
        "localsubjectaccessreviews",
        "tokenreviews",
    }
)
# The figures of one run that are medians over repeats (the others are not numbers or not additive).
FIGURES = (
    "wall_s", "cpu_s", "apiserver_cpu_s", "peak_rss_mb", "reads", "writes", "reviews", "discovery", "watches", "changed"
)  # fmt: skip
# Figures that add up over objects (memory does not).
ADDITIVE = ("wall_s", "cpu_s", "apiserver_cpu_s", "reads", "writes", "reviews", "discovery", "watches", "changed")
# Issue 16: a no-op's reads at shared-500 within READS_SLACK of shared-100's, and at most MOST_NOOP_READS.
READS_SLACK = 5
MOST_NOOP_READS = 40
# Issue 16: (scenario, phase) -> (what, most seconds of wall time).
WALL_TIME_TARGETS = {
    ("shared-500", "noop"): ("no-op re-run", 8),
    ("shared-500", "change"): ("one tenant changed", 10),
    ("dedicated-10x3", "noop"): ("no-op re-run", 5),
}
# The baselines, by their key in a scenario's medians (bench/baselines.py says what each runs).
BASELINES = {
    "baseline_a": "A: k8s, an object per loop item",
    "baseline_b": "B: k8s, all objects in one task",
    "baseline_c": "C: kubectl apply --server-side",
    "istioctl": "istioctl install",
    "baseline_d": "D: helm upgrade --install",
}
# (what, our phase, the (baseline, phase) pairs it is compared with): the table's rows, in this order; phases missing
# in a scenario are left out, and so are baselines not measured in it.
COMPARISONS = (
    ("converge", "converge", (("baseline_a", "converge"), ("baseline_b", "converge"), ("baseline_c", "converge"))),
    ("no-op re-run", "noop", (("baseline_a", "noop"), ("baseline_b", "noop"), ("baseline_c", "noop"))),
    ("one tenant changed", "change", (("baseline_b", "change"), ("baseline_c", "change"))),
    ("control plane only", "control_plane", (("istioctl", "install"), ("baseline_d", "converge"))),
    ("control plane no-op", "control_plane_noop", (("baseline_d", "noop"),)),
    ("rotate remote secrets", "rotate", ()),
)
# Issue 16 against the strongest baselines: (our phase, baseline, its phase, target, the most ours / baseline wall
# time may be). Baseline D runs in the dedicated model only.
BASELINE_TARGETS = (
    ("noop", "baseline_c", "noop", "no-op re-run <= baseline C (kubectl apply --server-side)", 1.0),
    ("converge", "baseline_c", "converge", "converge <= 1.2x baseline C (kubectl apply --server-side)", 1.2),
    ("control_plane", "baseline_d", "converge", "control planes, converge <= baseline D (helm upgrade --install)", 1.0),
    (
        "control_plane_noop",
        "baseline_d",
        "noop",
        "control planes, no-op re-run <= baseline D (helm upgrade --install)",
        1.0,
    ),
)


def request_summary(delta: dict) -> dict:
    """Requests by verb; reads (GET/LIST of objects) and writes, in all and by resource; reviews (REVIEW_RESOURCES);
    discovery (GETs of /api, /apis, /version, /openapi: no resource) and watches; from {(verb, resource, subresource):
    count}."""
    by_verb, read, written = {}, {}, {}
    discovery = watches = reviews = 0
    for (verb, resource, subresource), count in delta.items():
        by_verb[verb] = by_verb.get(verb, 0) + count
        what = f"{verb} {resource}/{subresource}" if subresource else f"{verb} {resource}"
        if verb in READ_VERBS and not resource:
            discovery += count
        elif verb in READ_VERBS:
            read[what] = read.get(what, 0) + count
        elif verb == "POST" and resource in REVIEW_RESOURCES:
            reviews += count
        elif verb in WRITE_VERBS:
            written[what] = written.get(what, 0) + count
        elif verb == "WATCH":
            watches += count
    return {
        "requests": dict(sorted(by_verb.items())),
        "reads": sum(read.values()),
        "read": dict(sorted(read.items())),  # by resource: do reads follow kinds or objects?
        "discovery": discovery,
        "writes": sum(written.values()),
        "written": dict(sorted(written.items())),  # by resource: what a no-op run must not have
        "reviews": reviews,
        "watches": watches,
    }


def median_of(runs: list) -> dict:
    """The median of each figure over repeated runs, plus how many runs it is taken from."""
    summary = {"runs": len(runs)}
    for figure in FIGURES:
        values = [run[figure] for run in runs if run.get(figure) is not None]
        if values:
            summary[figure] = round(statistics.median(values), 2)
    return summary


def ratio(ours, baseline):
    """ours / baseline, or None when either is missing or the baseline is zero."""
    if ours is None or not baseline:
        return None
    return round(ours / baseline, 2)


def scaled(summary: dict, factor: float) -> dict:
    """A baseline measured on a sample of the objects, scaled to all of them (its cost is one module run per object,
    so it grows linearly). Memory is per object, so it is not scaled."""
    return {
        key: round(value * factor, 2) if key in ADDITIVE and value is not None else value
        for key, value in summary.items()
    }


def comparisons(scenario: dict) -> list:
    """Table rows for one scenario's medians: {what, ours, against (the baseline's name), baseline, ratio (wall),
    cpu_ratio}, a row per phase and baseline measured; a phase with no baseline measured gets one row without."""
    rows = []
    for what, phase, pairs in COMPARISONS:
        ours = _phase(scenario, "ours", phase)
        if ours is None:
            continue
        measured = [(side, _phase(scenario, side, their)) for side, their in pairs if _phase(scenario, side, their)]
        for side, baseline in measured or [(None, None)]:
            rows.append(
                {
                    "what": what,
                    "ours": ours,
                    "against": BASELINES.get(side),
                    "baseline": baseline,
                    "ratio": ratio(ours["wall_s"], baseline["wall_s"]) if baseline else None,
                    "cpu_ratio": ratio(ours.get("cpu_s"), baseline.get("cpu_s")) if baseline else None,
                }
            )
    return rows


def growth(smaller: dict, larger: dict) -> dict:
    """How each of our figures grows from the smaller scenario to the larger: larger / smaller per phase."""
    grown = {}
    for phase in ("converge", "noop", "change"):
        small = (smaller.get("medians") or {}).get("ours", {}).get(phase)
        large = (larger.get("medians") or {}).get("ours", {}).get(phase)
        if small and large:
            grown[phase] = {
                figure: ratio(large.get(figure), small.get(figure)) for figure in ("wall_s", "cpu_s", "reads", "writes")
            }
    return {
        "from": smaller["name"],
        "to": larger["name"],
        "tenant_namespaces": ratio(larger["size"]["namespaces"], smaller["size"]["namespaces"]),
        "objects": ratio(larger["size"].get("objects"), smaller["size"].get("objects")),
        "phases": grown,
    }


def _phase(scenario: dict, side: str, phase: str) -> dict | None:
    return ((scenario or {}).get("medians") or {}).get(side, {}).get(phase)


def targets(scenarios: dict) -> list:
    """Issue 8's and issue 16's targets, each with the figures it is judged on and whether it is met (shown, never
    asserted)."""
    results = []
    large = scenarios.get("shared-500")
    ours_noop, base_noop = _phase(large, "ours", "noop"), _phase(large, "baseline_a", "noop")
    if ours_noop and base_noop:
        speedup = ratio(base_noop["wall_s"], ours_noop["wall_s"])
        cpu_speedup = ratio(base_noop.get("cpu_s"), ours_noop.get("cpu_s"))
        results.append(
            {
                "target": "no-op re-run at 500 shared tenants >= 5x faster than baseline A, with 0 writes",
                "figures": f"{speedup}x faster ({cpu_speedup}x less CPU), {ours_noop['writes']} writes",
                "met": speedup >= 5 and ours_noop["writes"] == 0,
            }
        )
    small, ours_small = scenarios.get("shared-100"), _phase(scenarios.get("shared-100"), "ours", "noop")
    if ours_noop and ours_small:
        objects = ratio(large["size"]["objects"], small["size"]["objects"])
        results.append(
            {
                "target": (
                    f"no-op reads grow with the number of object kinds, not of objects: shared-500 within "
                    f"{READS_SLACK} of shared-100, at most {MOST_NOOP_READS}"
                ),
                "figures": (
                    f"{ours_noop['reads']:.0f} reads at shared-500, {ours_small['reads']:.0f} at shared-100, "
                    f"for objects x{objects}, the same kinds"
                ),
                "met": abs(ours_noop["reads"] - ours_small["reads"]) <= READS_SLACK
                and ours_noop["reads"] <= MOST_NOOP_READS,
            }
        )
    results += _wall_time_targets(scenarios)
    for name, scenario in sorted(scenarios.items()):
        ours, base = _phase(scenario, "ours", "converge"), _phase(scenario, "baseline_a", "converge")
        if ours and base:
            share = ratio(ours["wall_s"], base["wall_s"])
            results.append(
                {
                    "target": f"{name}: first converge <= baseline A / 2",
                    "figures": f"ours/baseline A = {share} (CPU {ratio(ours.get('cpu_s'), base.get('cpu_s'))})",
                    "met": share <= 0.5,
                }
            )
        ours, base = _phase(scenario, "ours", "control_plane"), _phase(scenario, "istioctl", "install")
        if ours and base and scenario.get("model") == "dedicated":
            share = ratio(ours["wall_s"], base["wall_s"])
            results.append(
                {
                    "target": f"{name}: control-plane install within 1.5x of istioctl install",
                    "figures": f"ours/istioctl = {share} (CPU {ratio(ours.get('cpu_s'), base.get('cpu_s'))})",
                    "met": share <= 1.5,
                }
            )
        results += _baseline_targets(name, scenario)
    return results


def _compared(ours: dict, base: dict) -> str:
    """A target's figures: the wall and CPU ratios, and the writes of each side."""
    return (
        f"ours/baseline = {ratio(ours['wall_s'], base['wall_s'])} (CPU {ratio(ours.get('cpu_s'), base.get('cpu_s'))}); "
        f"{ours.get('writes', 0):.0f} writes against {base.get('writes', 0):.0f}"
    )


def _baseline_targets(name: str, scenario: dict) -> list:
    """Issue 16's targets against baselines C and D (BASELINE_TARGETS) that this scenario measured."""
    results = []
    for phase, side, their_phase, target, most in BASELINE_TARGETS:
        ours, base = _phase(scenario, "ours", phase), _phase(scenario, side, their_phase)
        if ours and base:
            results.append(
                {
                    "target": f"{name}: {target}",
                    "figures": _compared(ours, base),
                    "met": ratio(ours["wall_s"], base["wall_s"]) <= most,
                }
            )
    return results


def _wall_time_targets(scenarios: dict) -> list:
    """Issue 16's wall-time targets (WALL_TIME_TARGETS) for the scenarios measured."""
    results = []
    for (name, phase), (what, most) in WALL_TIME_TARGETS.items():
        figures = _phase(scenarios.get(name), "ours", phase)
        if figures:
            results.append(
                {
                    "target": f"{name}: {what} <= {most} s wall",
                    "figures": f"{figures['wall_s']} s ({figures.get('cpu_s')} s CPU), {figures['writes']:.0f} writes",
                    "met": figures["wall_s"] <= most,
                }
            )
    return results


def _cell(figures: dict | None) -> str:
    if not figures:
        return "-"
    return (
        f"{figures['wall_s']:.1f} s ({figures.get('cpu_s', 0):.1f} s CPU), "
        f"{figures.get('reads', 0):.0f} r / {figures.get('writes', 0):.0f} w"
        + (f" / {figures['reviews']:.0f} review" if figures.get("reviews") else "")
    )


def _number(value) -> str:
    return "-" if value is None else f"{value}"


def markdown_table(scenarios: dict) -> str:
    """One row per scenario, phase and baseline: wall time, CPU time and requests (reads/writes) of ours and the
    baseline, the ratios, our peak RSS and the number of runs the medians are taken from."""
    lines = [
        "| scenario | phase | ours (median) | baseline | baseline (median) | ours/baseline wall "
        "| ours/baseline CPU | ours peak RSS | runs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, scenario in scenarios.items():
        if scenario.get("status") != "measured":
            lines.append(f"| {name} | {scenario.get('status')} | | | | | | | |")
            continue
        for row in comparisons(scenario):
            ours = row["ours"]
            lines.append(
                f"| {name} | {row['what']} | {_cell(ours)} | {row['against'] or '-'} | {_cell(row['baseline'])} "
                f"| {_number(row['ratio'])} | {_number(row['cpu_ratio'])} | {ours['peak_rss_mb']:.0f} MB "
                f"| {ours['runs']} |"
            )
    return "\n".join(lines)


def _growth_line(grown: dict) -> str:
    phases = ", ".join(
        f"{phase} wall x{figures['wall_s']}, CPU x{figures['cpu_s']}, reads x{figures['reads']}"
        for phase, figures in grown["phases"].items()
    )
    return (
        f"- {grown['from']} -> {grown['to']}: tenant namespaces x{grown['tenant_namespaces']}, "
        f"objects x{grown['objects']}; {phases}"
    )


def markdown_summary(results: dict, note: str) -> str:
    """The whole result as Markdown: what it ran on, the table, growth, the targets and how to read them."""
    versions, machine = results["versions"], results["machine"]
    lines = [
        f"Run {results['started']}, {results['duration_s'] / 60:.0f} min: `{' '.join(results['command'])}`. "
        f"meshops.istio {versions['meshops.istio']} ({versions['commit']}), ansible-core {versions['ansible-core']}, "
        f"kubernetes.core {versions['kubernetes.core']}, Python {versions['python']}, Kubernetes "
        f"{versions['KUBERNETES_VERSION']}, istioctl {versions['istioctl']}; {machine['cpus']} CPUs "
        f"({machine['cpu_model']}), {machine['memory_gib']} GiB; load average {results['load_average_at_start'][0]} "
        f"at start, {results['load_average_at_end'][0]} at end.",
        "",
        markdown_table(results["scenarios"]),
        "",
    ]
    if results["growth"]:
        lines += ["Growth (larger / smaller):", "", *(_growth_line(g) for g in results["growth"]), ""]
    if results["targets"]:
        lines += ["Targets (shown, not asserted):", ""]
        lines += [f"- {'met' if t['met'] else 'not met'}: {t['target']}: {t['figures']}" for t in results["targets"]]
        lines.append("")
    lines.append(note)
    return "\n".join(lines) + "\n"
