"""``rascore evaluate``: score every DICOM file of a labelled folder and compare with its truth."""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scoring.evaluation.scores import ImageComparison, PredictedJoint, TrueJoint, evaluate
from scoring.phantom import PhantomConfig, generate_image, joint_type
from scoring.pipeline import Scorer
from worker.scoring_io import score_file


def _truth_joints(record: dict[str, Any]) -> list[TrueJoint]:
    return [
        TrueJoint(
            label=j["label"],
            joint_type=j.get("joint_type") or joint_type(j["label"].split("_", 1)[1]),
            box=tuple(j["box"]),
            jsn=int(j["jsn"]),
            erosion=int(j["erosion"]),
        )
        for j in record["joints"]
    ]


def evaluate_folder(
    scorer: Scorer, data: Path, advance: Callable[[], None] | None = None
) -> dict[str, Any]:
    truth = json.loads((data / "truth.json").read_text())
    comparisons = []
    for record in truth["images"]:
        scored = score_file(scorer, data / record["file"])
        # a joint that is not assessable counts as found (and identified) but has no grades
        predicted = [
            PredictedJoint(
                j.label,
                tuple(float(v) for v in j.box),  # type: ignore[arg-type]
                j.jsn if j.assessable else None,
                j.erosion if j.assessable else None,
                assessable=j.assessable,
                reason=j.reason,
                jsn_probs=j.jsn_probs,
                erosion_probs=j.erosion_probs,
            )
            for j in scored.score.joints
        ]
        seconds = (scored.timings_ms["total"] - scored.timings_ms.get("parse", 0.0)) / 1e3
        comparisons.append(ImageComparison(_truth_joints(record), predicted, seconds))
        if advance:
            advance()
    figures = evaluate(comparisons)
    figures["model"] = {"name": scorer.bundle.name, "version": scorer.bundle.version}
    return figures


def evaluate_phantom_test_set(
    model_dir: Path, phantom_set: Any, bar: Callable[[str, int], Callable[[], None]]
) -> dict[str, Any]:
    """Write the recipe's test phantoms as DICOM and evaluate the new model on them."""
    from worker.lab.phantom_export import write_image

    config = PhantomConfig(hands=phantom_set.hands, distribution=phantom_set.distribution)
    with tempfile.TemporaryDirectory(prefix="rascore-test-") as tmp:
        out = Path(tmp)
        advance = bar("test phantoms", phantom_set.count)
        records = []
        for i in range(phantom_set.count):
            records.append(
                write_image(phantom_set.seed, generate_image(phantom_set.seed, i, config), out)
            )
            advance()
        (out / "truth.json").write_text(json.dumps({"images": records}))
        figures = evaluate_folder(Scorer.load(model_dir), out, bar("evaluation", phantom_set.count))
    figures["test_set"] = {
        "seed": phantom_set.seed,
        "count": phantom_set.count,
        "distribution": phantom_set.distribution,
    }
    return figures


def _pct(value: float) -> str:
    return (
        "–"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{100 * value:.1f}%"
    )


def _r(value: float) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.2f}"


PAPER = {
    "detection": "95.3%",
    "jsn_pea": "49.3–65.4%",
    "jsn_pca": "64.0–85.3%",
    "jsn_sens": "88.0–94.2%",
    "jsn_spec": "52.0–74.8%",
    "ero_pea": "70.6–74.1%",
    "ero_pca": "84.3%",
    "ero_sens": "34.8–42.4%",
    "ero_spec": "88.2–89.4%",
    "jsn_r": "0.72–0.88",
    "ero_r": "0.54–0.75",
    "seconds": "0.63",
}


def markdown_table(figures: dict[str, Any]) -> str:
    """The evaluation as the README shows it, beside the paper's figures."""
    d, j, e = figures["detection"], figures["jsn"], figures["erosion"]
    rows = [
        ("joint detection sensitivity", PAPER["detection"], _pct(d["sensitivity"])),
        (
            "… PIP / IP / MCP",
            "98.3% / 86.7% / 94.0%",
            " / ".join(_pct(d["per_type"][k]) for k in ("PIP", "IP", "MCP")),
        ),
        ("identity accuracy of detected joints", "–", _pct(d["identity_accuracy"])),
        ("JSN exact agreement (PEA)", PAPER["jsn_pea"], _pct(j["pea"])),
        ("JSN close agreement (PCA, ±1)", PAPER["jsn_pca"], _pct(j["pca"])),
        (
            "JSN sensitivity / specificity (0 vs ≥1)",
            f"{PAPER['jsn_sens']} / {PAPER['jsn_spec']}",
            f"{_pct(j['sensitivity'])} / {_pct(j['specificity'])}",
        ),
        ("JSN quadratic weighted kappa", "–", _r(j["kappa"])),
        ("erosion PEA", PAPER["ero_pea"], _pct(e["pea"])),
        ("erosion PCA (±1)", PAPER["ero_pca"], _pct(e["pca"])),
        (
            "erosion sensitivity / specificity",
            f"{PAPER['ero_sens']} / {PAPER['ero_spec']}",
            f"{_pct(e['sensitivity'])} / {_pct(e['specificity'])}",
        ),
        ("erosion quadratic weighted kappa", "–", _r(e["kappa"])),
        (
            "Pearson r of totals, JSN / erosion",
            f"{PAPER['jsn_r']} / {PAPER['ero_r']}",
            f"{_r(j['pearson_total'])} / {_r(e['pearson_total'])}",
        ),
        ("seconds per radiograph", PAPER["seconds"], f"{figures['seconds_per_image']:.3f}"),
    ]
    lines = [
        f"{figures['images']} radiographs, {figures['joints']} joints",
        "",
        "| figure | paper | this model |",
        "|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def markdown_card(card: dict[str, Any]) -> str:
    """The model card in Markdown."""
    lines = _card_identity(card) + _card_recipe(card) + _card_evaluation(card)
    lines += [
        "## Limitations",
        "",
        "The phantom draws what its author knows of RA radiographs; real radiographs differ in "
        "anatomy, disease and acquisition. Figures on phantoms measure how well the method "
        "recovers the phantom's labels, not performance on patients.",
        "",
    ]
    return "\n".join(lines)


def _card_identity(card: dict[str, Any]) -> list[str]:
    """Who the model is, and the data it was trained on."""
    lines = [
        f"# Model card: {card['name']} {card['version']}",
        "",
        "**NOT FOR DIAGNOSTIC USE.** " + card["intended_use"],
        "",
        f"- Device UID: `{card['device_uid']}`",
        f"- Content hash (sha256 of the detector, layout, weights, typicality and settings): "
        f"`{card['content_hash']}`",
        f"- Created: {card['created']}",
        f"- Method: {card['method']}",
        "",
        "## Training data",
        "",
        f"Synthetic phantoms (generator {card['training_data']['generator_version']}):",
        "",
    ]
    for part in ("train", "validation", "test"):
        s = card["training_data"][part]
        lines.append(
            f"- {part}: seed {s['seed']}, {s['count']} images, {s['hands']} hands each, "
            f"{s['distribution']} class frequencies"
        )
    real = card["training_data"].get("real")
    if real:
        lines += [
            "",
            f"Real hands: {real['kind']}; {real['note']}. Split {real['split']}: "
            f"{real['train']} for training, {real['tuning']} held out of training for choices "
            f"(epochs, thresholds), {real['validation']} for validation only.",
        ]
    return lines


def _card_recipe(card: dict[str, Any]) -> list[str]:
    """How it was trained: detector, networks, abstention and class prior."""
    t = card["training"]
    recipe = card["recipe"]
    detector = card.get("detector", {}).get("kind", "cascade")
    lines = ["", "## Recipe", "", f"- detector: {detector}"]
    if detector == "cascade":
        lines.append(
            f"- cascade: {json.dumps(recipe['cascade'])} on {recipe['cascade_images']} images"
        )
    else:
        lines.append(
            f"- keypoint network: {json.dumps(recipe.get('keypoints', {}))} on "
            f"{recipe.get('keypoint_images')} phantoms and the real training hands "
            f"(each shown {recipe.get('real_repeat')} times an epoch); best epoch "
            f"{t.get('keypoints', {}).get('best_epoch')}"
        )
    lines += [
        f"- CNNs: {json.dumps(recipe['cnn'])}",
        f"- best epochs: JSN {t['jsn']['best_epoch']}, erosion {t['erosion']['best_epoch']}",
        f"- clips: {t['clips']}; seconds: {t['seconds']}",
    ]
    if "abstention" in card:
        lines.append(
            f"- not assessable when: {json.dumps(card['abstention'])}, or a clip's typicality "
            f"distance exceeds {t.get('typicality_threshold')} (the 99.5th percentile of "
            "held-out training-kind clips)"
        )
    prior = card.get("class_prior") or {}
    if prior.get("train"):
        lines.append(
            f"- class prior: {', '.join(prior['train'])} probabilities moved from the training "
            f"frequencies {json.dumps(prior['train'])} to {prior.get('source', 'the target')} "
            "by Bayes' rule"
        )
    lines.append("")
    return lines


def _card_evaluation(card: dict[str, Any]) -> list[str]:
    """The figures on held-out phantoms and, when trained with them, on real hands."""
    lines: list[str] = []
    if "evaluation" in card:
        ts = card["evaluation"].get("test_set", {})
        lines += [
            "## Evaluation",
            "",
            f"Held-out phantoms (seed {ts.get('seed')}, never used in training):",
            "",
            markdown_table(card["evaluation"]),
            "",
        ]
    if "evaluation_real" in card:
        from worker.lab.evaluate_landmarks import readable_table

        ev = card["evaluation_real"]
        lines += [
            "## Evaluation on real images",
            "",
            f"The validation split of the real hands ({ev['images']} images, never used in "
            "training or for any choice), told no laterality, as a scanned film arrives. "
            "Healthy children's hands: every grade of JSN ≥ 2 or erosion ≥ 2 is wrong.",
            "",
            readable_table(ev),
            "",
        ]
    return lines
