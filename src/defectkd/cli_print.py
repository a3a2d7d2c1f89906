"""What the CLI prints: tables of runs, checks and metrics. Each task's printers sit in the tables at the
bottom (`SUMMARY`, `CHECK`, `VAL`), looked up by the `task` a result names."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

_WIDTH = None if sys.stdout.isatty() else 140  # logs and pipes get full tables, not 80 columns
out = Console(width=_WIDTH)
err = Console(stderr=True, width=_WIDTH)


def table(title: str, rows: list[dict], columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*[escape(fmt(row.get(col), col)) for col in columns])  # "defectkd[openvino]" is not markup
    return table


def fmt(v, column: str = "") -> str:
    if isinstance(v, float) and ("fps" in column.lower() or column.endswith(("_ms", "_px"))):  # 13.9, not 13.9000
        return f"{v:.1f}"
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, int) and v >= 10_000:
        return f"{v / 1e6:.3f} M"
    return "-" if v is None else str(v)


def print_summary(summary: dict, title: str) -> None:
    """The final table of a run: the model (and the teacher, for distillation) on the validation images."""
    if summary.get("secondary"):  # a DDP worker process: the primary one prints the table
        return
    rows = [{"model": summary["model"], "role": "student" if "teacher" in summary else "model",
             "parameters": summary.get("parameters"), "epochs": summary["epochs_run"], **summary["val"]}]
    if "teacher" in summary:
        t = summary["teacher"]
        rows.append({"model": t["model"], "role": "teacher", "parameters": t["parameters"], **(t["val"] or {})})
    caption, columns, files = SUMMARY[summary.get("task", "segment")]
    out.print(table(caption or title, rows, ["model", "role", "parameters", "epochs", *columns]))
    out.print(f"run saved to {summary['run']} ({files}student-only deploy file: {summary['deploy']})",
              highlight=False, soft_wrap=True)


def print_baseline(b: dict) -> None:
    from defectkd.engine.compare import describe_gain

    out.print(f"gain over the student alone ({b['run']}): {describe_gain(b)}", highlight=False, soft_wrap=True)


def print_segment_check(report: dict) -> None:
    """`data check` of a segmentation set: pairs per split, sizes, crack fraction, problems."""
    out.print(f"[bold]{report['path']}[/]  layout: {report['layout']}")
    rows = [{"split": k, **v} for k, v in report["splits"].items()]
    out.print(table("pairs", rows, ["split", "pairs", "unlabelled"]))
    out.print(f"image sizes: {report['image_sizes']}", highlight=False)
    cf = report["crack_fraction"]
    out.print(f"crack-pixel fraction: mean {cf['mean']:.4f}, min {cf['min']:.4f}, max {cf['max']:.4f}")
    problems = report["problems"]
    out.print(f"problems: {len(problems)}" + ("" if problems else " (all pairs valid)"))
    for p in problems:
        out.print(f"  {p['file']}: {p['message']}", highlight=False)


def print_segment_val(result: dict, data, split: str) -> None:
    m = result["metrics"]
    out.print(table(f"{result['model']} on {data}, {result.get('scored', f'split {split}')}, "
                    f"threshold {result['threshold']}", [m],
                     ["images", "precision", "recall", "f1", "iou", "f1_mean_img", "miou_2class", "ods_f1",
                      "ois_f1", "ods_f1_tol", "ois_f1_tol"]))
    by_width = m.get("recall_by_width")
    if by_width:
        pixels = m.get("pixels_by_width", {})
        cells = [f"{k} {'-' if v is None else f'{v:.3f}'} ({pixels.get(k, 0)} px)" for k, v in by_width.items()]
        out.print(f"recall by crack width at threshold {result['threshold']}: " + ", ".join(cells), highlight=False)
    if "ods_threshold" in m:
        out.print(f"best single threshold on these images: {m['ods_threshold']:.2f} (F1 {m['ods_f1']:.4f}, "
                  f"{100 * (m['ods_f1'] - m['f1']):+.2f} points over {result['threshold']})", highlight=False)
    if "calibrated" in result:
        c = result["calibrated"]
        out.print(f"calibrated weights (threshold {c['threshold']}): {c['weights']}", highlight=False)
    out.print(f"metrics and overlays saved to {result['save_dir']}", highlight=False)


def print_classify_check(report: dict) -> None:
    """`data check` of a classification set: classes x splits, sizes, problems."""
    out.print(f"[bold]{report['path']}[/]  layout: {report['layout']}  classes: {len(report['classes'])}")
    splits = list(report["splits"])
    rows = [{"class": c, **{s: report["splits"][s]["per_class"].get(c, 0) for s in splits}}
            for c in report["classes"]]
    rows.append({"class": "total", **{s: report["splits"][s]["images"] for s in splits}})
    out.print(table("images per class and split", rows, ["class", *splits]))
    out.print(f"image sizes: {report['image_sizes']}", highlight=False)
    problems = report["problems"]
    out.print(f"problems: {len(problems)}" + ("" if problems else " (all images readable)"))
    for p in problems:
        out.print(f"  {p['file']}: {p['message']}", highlight=False)


def print_classify_metrics(m: dict, title: str) -> None:
    out.print(table(f"{title} (precision, recall, F1: macro over classes)", [m],
                     ["images", "accuracy", "precision", "recall", "f1"]))
    rows = [{"class": name, **v} for name, v in m["per_class"].items()]
    out.print(table("per class", rows, ["class", "support", "precision", "recall", "f1"]))


def print_detect_check(report: dict) -> None:
    """`data check` of a detection set: boxes per class and split, images, background images, problems."""
    out.print(f"[bold]{report['path']}[/]  layout: {report['layout']}  classes: {len(report['classes'])}")
    splits = list(report["splits"])
    rows = [{"class": c, **{s: report["splits"][s]["per_class"].get(c, 0) for s in splits}}
            for c in report["classes"]]
    rows.append({"class": "boxes", **{s: report["splits"][s]["boxes"] for s in splits}})
    rows.append({"class": "images", **{s: report["splits"][s]["images"] for s in splits}})
    rows.append({"class": "background images", **{s: report["splits"][s]["background_images"] for s in splits}})
    out.print(table("boxes per class and split", rows, ["class", *splits]))
    out.print(f"image sizes: {report['image_sizes']}; box areas (COCO): {report['box_areas']}", highlight=False)
    out.print(f"boxes outside the image: {report['boxes_clipped']} clipped, {report['boxes_dropped']} dropped",
              highlight=False)
    problems = report["problems"]
    out.print(f"problems: {len(problems)}" + ("" if problems else " (all images and annotations readable)"))
    for p in problems:
        out.print(f"  {p['file']}: {p['message']}" + ("" if p["blocking"] else " (not blocking)"), highlight=False)


def print_detect_metrics(m: dict, title: str) -> None:
    out.print(table(f"{title} (COCO AP; -1: nothing to measure)", [m],
                     ["images", "boxes", "map", "map_50", "map_75", "map_small", "map_medium", "map_large",
                      "mar_100"]))
    rows = [{"class": name, **v} for name, v in m["per_class"].items()]
    out.print(table("per class", rows, ["class", "boxes", "ap", "ap_50", "ar_100"]))


def print_classify_val(result: dict, data, split: str) -> None:
    print_classify_metrics(result["metrics"], f"{result['model']} on {data}, split {split}")
    out.print(f"metrics.json and confusion.png saved to {result['save_dir']}", highlight=False)


def print_detect_val(result: dict, data, split: str) -> None:
    print_detect_metrics(result["metrics"], f"{result['model']} on {data}, split {split}")
    out.print(f"metrics.json, pr_curve.png and examples/ saved to {result['save_dir']}", highlight=False)


# per task: the final table's caption (None: the verb's), its metric columns, and the files a run adds
SUMMARY = {
    "segment": (None, ["precision", "recall", "f1", "iou", "ods_f1", "ois_f1", "f1_tol"], ""),
    "classify": ("validation (best.pt; precision, recall, F1: macro over classes)",
                 ["images", "accuracy", "precision", "recall", "f1"], "confusion.png; "),
    "detect": ("validation (best.pt; COCO mAP 0.5:0.95, mAP 0.5, recall at 100)",
               ["images", "map", "map_50", "map_75", "mar_100"], "pr_curve.png, examples/; "),
}
def print_recognised(report: dict) -> None:
    """Which layout `data check` read, the task it implies, the evidence, and any other reading that fits."""
    seen = report.get("recognised")
    why = {"--task": "as --task says", "recognised": "recognised", "fallback": "no layout recognised"}
    line = f"task {report['task']} ({why.get(report.get('task_from'), '')})"
    if seen and seen["task"] == report["task"]:
        line += f": layout {seen['layout']}, {seen['evidence']}"
    elif seen:
        line += f"; the folder reads best as {seen['task']} ({seen['layout']}: {seen['evidence']})"
    out.print(escape(line), highlight=False, soft_wrap=True)
    for alt in report.get("alternatives", []):
        out.print(escape(f"also fits: {alt['task']} ({alt['layout']}: {alt['evidence']}); pick it with "
                         f"{alt['pick_with']}"), highlight=False, soft_wrap=True)


CHECK = {"segment": print_segment_check, "classify": print_classify_check, "detect": print_detect_check}
VAL = {"segment": print_segment_val, "classify": print_classify_val, "detect": print_detect_val}
