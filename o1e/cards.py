"""Hugging Face cards: a ``README.md`` with YAML front matter in every stage output and every trained model,
so that ``huggingface-cli upload`` publishes either folder as it is and the Hub shows what it holds.

- Datasets card (``o1e.runs.RunRecord.finish`` writes it in a stage's output folder): each dataset there is
  a config (``datasets.load_dataset(OUTPUT, NAME)``), with its schema, row count, lineage and source licence.
- Model card (``o1e train`` writes it): ``base_model``, ``library_name``, ``tags``, ``datasets``, how to use
  the model, how it was trained; ``add_results`` adds a ``model-index`` entry each time ``o1e eval``
  evaluates it.
The front matter is built with ``huggingface_hub``'s card classes, which the Hub validates against.
"""

from __future__ import annotations

from typing import Any

from o1e import storage

CARD = "README.md"
TAGS = ["o1e", "o1-embedder", "thought-augmented-retrieval"]
_HUB_LICENCES = {"CC BY-NC 2.0": "cc-by-nc-2.0", "CC BY-NC 4.0": "cc-by-nc-4.0", "CC BY 4.0": "cc-by-4.0",
                 "CC BY-SA 4.0": "cc-by-sa-4.0", "Apache-2.0": "apache-2.0", "MIT": "mit"}
# BEIR's datasets on the Hub are BeIR/<name>: a card names the evaluation set that way when a folder's name is one.
BEIR_NAMES = {"scifact", "nfcorpus", "fiqa", "scidocs", "trec-covid", "webis-touche2020", "dbpedia-entity", "nq",
              "hotpotqa", "fever", "msmarco", "arguana", "quora", "climate-fever"}


def hub_licence(licences: list[str]) -> str:
    """The Hub's licence id for the licences named (``other`` when none or several is known)."""
    ids = {hub for text in licences for name, hub in _HUB_LICENCES.items() if name in text}
    return ids.pop() if len(ids) == 1 else "other"


def beir_hub_id(url: str) -> str | None:
    """``BeIR/scifact`` for a folder named ``scifact`` (or the bundled ``scifact-mini`` slice of it)."""
    name = url.rstrip("/").rsplit("/", 1)[-1].removesuffix("-mini")
    return f"BeIR/{name}" if name in BEIR_NAMES else None


def _size_category(rows: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if rows < limit:
            return name
    return "n>10M"


def datasets_card(stage: str, manifests: dict[str, storage.Manifest]) -> str:
    """The card of a stage's output folder: each dataset in it is one config of a Hub dataset
    (``datasets.load_dataset(OUTPUT, NAME)``), with its schema, row count, lineage and source licence.

    It sits beside the datasets, not inside them: a ``README.md`` among a dataset's parts would stop
    ``pandas.read_parquet(FOLDER)``, which the dataset contract promises."""
    from huggingface_hub import DatasetCard, DatasetCardData

    from o1e import schemas

    licences = storage.parent_licences([p for m in manifests.values() for p in m.parents])
    data = DatasetCardData(
        license=hub_licence(licences), pretty_name=f"o1e {stage} output",
        size_categories=_size_category(max((m.num_rows for m in manifests.values()), default=0)),
        tags=[*TAGS, *sorted({m.schema for m in manifests.values()})],
        configs=[{"config_name": name, "data_files": f"{name}/part-*.parquet"} for name in manifests])
    sections = [_dataset_section(name, m, schemas.get(m.schema)) for name, m in manifests.items()]
    body = f"""
# o1e `{stage}` output

Datasets written by `o1e {stage}`, one config each: {', '.join(f'`{n}`' for n in manifests)}.

```python
from datasets import load_dataset
rows = load_dataset("OUTPUT", "{_main(manifests)}", split="train")   # or "parquet", data_files="OUTPUT/NAME/part-*.parquet"
```
DuckDB `read_parquet('OUTPUT/NAME/*.parquet')`, Polars `pl.read_parquet("OUTPUT/NAME/*.parquet")` and pandas
`pd.read_parquet("OUTPUT/NAME")` read the same rows. Each dataset's `_manifest.json` lists its parts with
row counts, sizes and sha256 (`o1e verify OUTPUT` checks them; `o1e lineage OUTPUT/NAME` walks the chain).

## Licence

{'; '.join(licences) if licences else 'Not recorded: the licence of the source data named in the lineage applies.'}
Rows carry text from that source and are under its licence.
{''.join(sections)}"""
    return str(DatasetCard(f"---\n{data.to_yaml()}\n---\n{body}"))


def _main(manifests: dict[str, storage.Manifest]) -> str:
    return next((n for n, m in manifests.items() if m.schema != "rejects"), next(iter(manifests)))


def _dataset_section(name: str, manifest: storage.Manifest, contract) -> str:
    columns = "\n".join(f"| `{c.name}` | `{c.type}` | {'yes' if c.nullable else 'no'} | {c.doc} |"
                        for c in contract.columns)
    parents = "\n".join(f"- `{p.get('url')}`" + (f" ({p['schema']}, config {p.get('config_fingerprint')})"
                                                if p.get("schema") else "") for p in manifest.parents)
    return f"""
## `{name}`: {contract.name} (schema version {contract.version})

{contract.doc}

{manifest.num_rows:,} rows in {len(manifest.files)} part(s); created {manifest.created_at} by o1e
{manifest.code_version}, config fingerprint `{manifest.config_fingerprint}`. Made from:
{parents or '- nothing recorded'}

| column | type | nullable | meaning |
|---|---|---|---|
{columns}
"""


def model_card(lineage: dict[str, Any], name: str) -> str:
    """The card of a model ``o1e train`` wrote; ``lineage`` is its ``lineage.json``."""
    from huggingface_hub import ModelCard, ModelCardData

    from o1e.models import PACKAGED_MODELS

    config, base = lineage["config"], lineage["base_model"]["path"]
    packaged = PACKAGED_MODELS.get(base)
    training = lineage["training_dataset"]
    licences = storage.parent_licences([training])
    data = ModelCardData(
        model_name=name, base_model=packaged.hub_id if packaged else base, library_name="transformers",
        license=packaged.licence if packaged else None, pipeline_tag="feature-extraction", tags=TAGS,
        datasets=[training["url"]])
    metrics = lineage.get("final_metrics") or {}
    loss, optim, seq, lora = config["loss"], config["optim"], config["sequence"], config["lora"]
    body = f"""
# {name}

An O1 Embedder model (Yan, Liu, Lian, "Let Retrievers Think Before Action", arXiv 2502.07555) trained with
o1e: given a query it writes a short thought, then embeds query + thought at its
`<emb>` token for dense retrieval; documents are embedded the same way, without a thought.

## Use

```python
from o1e.o1model import O1Model

model = O1Model.load_for_inference("PATH")
thoughts = model.generate_thoughts(["what causes myelodysplastic syndromes?"], n=3)
queries = model.embed_queries(["what causes myelodysplastic syndromes?"], thoughts)  # mean of 3 vectors
documents = model.embed_documents(["The NLRP3 inflammasome functions as a driver of ..."])
scores = queries @ documents.T
```
`o1e eval -r o1 -m PATH` evaluates it on a BEIR dataset; transformers and vLLM load the folder as is.

## Training

| | |
|---|---|
| base model | `{base}` |
| training data | `{training['url']}` ({lineage['rows']['usable']:,} usable rows of {lineage['rows']['total']:,}) |
| loss | λ {loss['contrastive_weight']} · InfoNCE (temperature {loss['temperature']}, groups of {loss['group_size']}) + (1 − λ) · generation |
| sequences | query {seq['query_max_tokens']} tokens, query side {seq['max_length']}, documents {seq['doc_max_tokens']}, thought dropout {seq['thought_dropout']} |
| optimiser | lr {optim['lr']}, warm-up {optim['warmup_ratio']}, {optim['epochs']} epoch(s), {optim['batch_size_per_worker']} queries x {config['num_workers']} workers per step |
| adapters | {'LoRA r ' + str(lora['r']) + ', alpha ' + str(lora['alpha']) + ' (merged)' if lora['enabled'] else 'none (full fine-tuning)'} |
| precision | {config['deepspeed']['precision']}, DeepSpeed ZeRO {config['deepspeed']['zero_stage']} |
| final step | {metrics.get('step')}: loss {_fmt(metrics.get('loss'))}, contrastive {_fmt(metrics.get('contrastive_loss'))}, generation {_fmt(metrics.get('generation_loss'))} |
| config fingerprint | `{lineage['config_fingerprint']}` (code {lineage['code_version']}) |

The whole config and lineage are in `lineage.json` beside this card; `o1e lineage PATH` prints the chain.
Training data licence: {'; '.join(licences) if licences else 'that of the source named in the lineage'}.

## Evaluation

Results are added to this card's `model-index` each time `o1e eval` evaluates the model.
"""
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n{body}"))


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "n/a"


def add_results(model_url: str, results: list[dict[str, Any]]) -> bool:
    """Add (or replace) ``model-index`` results on the card of the model at ``model_url``; each result:
    dataset url and split, metric type and name, value. False when the folder has no o1e model card."""
    from huggingface_hub import EvalResult, ModelCard

    url = storage.join(model_url, CARD)
    if not storage.exists(url):
        return False
    card = ModelCard(storage.read_text(url))
    if "o1e" not in (card.data.tags or []):
        return False
    new = [EvalResult(task_type="retrieval", task_name="Retrieval", dataset_type=beir_hub_id(r["dataset"]) or r["dataset"],
                      dataset_name=r["dataset_name"], dataset_split=r["split"], metric_type=r["metric_type"],
                      metric_name=r["metric_name"], metric_value=round(float(r["value"]), 4)) for r in results]
    replaced = {(e.dataset_name, e.dataset_split, e.metric_name) for e in new}
    kept = [e for e in (card.data.eval_results or []) if (e.dataset_name, e.dataset_split, e.metric_name) not in replaced]
    card.data.eval_results = kept + new
    card.data.model_name = card.data.model_name or "o1e-model"
    storage.write_text(url, str(card))
    return True

