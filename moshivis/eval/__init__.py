"""Evaluation: benchmark loaders, metrics, scoring of prediction files, and reports.

Modules (each one family, importable on its own; heavy dependencies are imported where used):
- `items`        `EvalItem`, `EvalLoadReport`, `Benchmark`: what the loaders return
- `benchmarks`   `load_benchmark(name, path, ...)` for vqav2, ocrvqa, coco, easy-vqa, babillage
- `babillage`    the spoken benchmark (kyutai/Babillage parquet files, audio decoded to 24 kHz)
- `resolve`      local folder or hub id -> local folder (the hub only when online)
- `vqa_metric`   the official VQAv2 accuracy (leave-one-out over the 10 human answers)
- `ocrvqa_metric` exact match (as PaliGemma scores OCR-VQA) and a spoken-normalised match
- `caption_metric` CIDEr-D, BLEU-4, ROUGE-L through pycocoevalcap (needs Java)
- `asr_metric`   WER and agreement between an ASR transcript of the spoken answer and the text answer
- `text_norm`    the spoken-form text normaliser shared by the last two
- `score`        `score(benchmark, predictions_jsonl, ground_truth)`
- `report`       JSON + Markdown + bar plot against the paper's numbers
"""
