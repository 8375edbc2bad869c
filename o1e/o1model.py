"""The O1 model: any Hugging Face causal LM that writes a thought and embeds query + thought at ``<emb>``.

Shared by train (the joint single pass, ``train/worker.py``) and eval (``-r o1``: ``generate_thoughts``,
``embed_queries``, ``embed_documents``). Saved as a plain Hugging Face folder (LoRA merged, tokenizer with the O1 tokens)
plus ``o1e_model.json`` (the sequence settings), so transformers and vLLM load it directly.
"""

from __future__ import annotations

import json
import os
from typing import Sequence

import torch
import torch.nn.functional as F

from o1e import sequences as o1data
from o1e.config import ConfigError
from o1e.sequences import SequenceConfig

META_FILE = "o1e_model.json"


def position_ids(mask: torch.Tensor) -> torch.Tensor:
    """Positions counted from each sequence's first real token, so left padding changes nothing."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def read_sequence_config(path: str) -> SequenceConfig:
    """The sequence settings a saved O1 model was trained with (the defaults for a folder without them)."""
    meta = os.path.join(path, META_FILE)
    if not os.path.isfile(meta):
        return SequenceConfig()
    with open(meta) as f:
        return SequenceConfig(**json.load(f)["sequence"])


def check_o1_tokens(path: str) -> None:
    """Fail early when the folder's tokenizer lacks the O1 tokens (not a model saved by ``o1e train``)."""
    from transformers import AutoTokenizer

    vocab = AutoTokenizer.from_pretrained(path).get_vocab()
    missing = [t for t in o1data.SPECIAL_TOKENS if t not in vocab]
    if missing:
        raise ConfigError(
            f"{path} lacks the O1 tokens {missing}: it is not a model saved by `o1e train`. To evaluate an "
            "untrained base model anyway, set retriever.add_special_tokens=true (its new tokens are random)")


class O1Model(torch.nn.Module):
    def __init__(self, lm, tokenizer, seq: SequenceConfig | None = None) -> None:
        super().__init__()
        self.lm = lm
        self.tokenizer = tokenizer
        self.seq = seq or SequenceConfig()
        added = o1data.add_special_tokens(tokenizer)
        if added or lm.get_input_embeddings().num_embeddings < len(tokenizer):
            lm.resize_token_embeddings(len(tokenizer))
        self.ids = o1data.TokenIds.of(tokenizer)

    # --- loading and saving ------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path: str, seq: SequenceConfig | None = None, dtype: torch.dtype | None = None,
                        ) -> "O1Model":
        """Load a base LM (special tokens added here) or a saved O1 model (its sequence settings kept)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from o1e.models import resolve_model_dir

        path = resolve_model_dir(path)
        if seq is None:
            seq = read_sequence_config(path)
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            lm = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32)
        except (OSError, ValueError) as err:  # a folder that cannot load fails the same way on every retry
            from o1e.errors import one_line

            raise ConfigError(f"model: {path} cannot be loaded ({one_line(str(err))[:300]}): give a Hugging "
                              "Face causal LM folder with its config, weights and tokenizer files") from None
        return cls(lm, tokenizer, seq)

    @classmethod
    def load_for_inference(cls, path: str, add_special_tokens: bool = False, dtype: torch.dtype | None = None
                           ) -> "O1Model":
        """A trained O1 model for retrieval; a folder without the O1 tokens is an error unless
        ``add_special_tokens`` (an untrained baseline, whose new token embeddings are random)."""
        if not add_special_tokens:
            check_o1_tokens(path)
        return cls.from_pretrained(path, dtype=dtype)

    def merged_lm(self):
        """The causal LM with any LoRA adapters merged into its weights."""
        from peft import PeftModel

        return self.lm.merge_and_unload() if isinstance(self.lm, PeftModel) else self.lm

    def save_pretrained(self, path: str, extra: dict | None = None) -> None:
        self.lm = self.merged_lm()
        self.lm.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        meta = {"format": "o1e-model", "version": 1, "sequence": self.seq.model_dump(), **(extra or {})}
        with open(os.path.join(path, META_FILE), "w") as f:
            json.dump(meta, f, indent=2, sort_keys=True)

    # --- the forward passes --------------------------------------------------------------------------

    def decoder(self):
        """The transformer without the LM head (documents go through this only)."""
        return self.lm.get_decoder()

    def hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.decoder()(input_ids=input_ids, attention_mask=attention_mask,
                             position_ids=position_ids(attention_mask), use_cache=False)
        return out.last_hidden_state

    def embed_at(self, hidden: torch.Tensor, input_ids: torch.Tensor) -> list[torch.Tensor]:
        """Normalised embeddings at the final ``<emb>`` (last position: left padding); first one too in
        the two-``<emb>`` variant (query-only embedding first)."""
        final = F.normalize(hidden[:, -1].float(), dim=-1)
        if not self.seq.two_emb:
            return [final]
        first = (input_ids == self.ids.emb).int().argmax(dim=1)
        query_only = F.normalize(hidden[torch.arange(hidden.shape[0]), first].float(), dim=-1)
        return [query_only, final]

    def generation_from_hidden(self, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Next-token loss on the labelled positions; logits only where a label is, not over the whole
        sequence and vocabulary."""
        labels = labels[:, 1:]
        keep = labels != o1data.IGNORE
        if not keep.any():
            return hidden.sum() * 0.0
        logits = self.lm.get_output_embeddings()(hidden[:, :-1][keep])
        return F.cross_entropy(logits.float(), labels[keep])

    def query_pass(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The single joint pass: generation loss and query embedding(s) from one forward."""
        hidden = self.hidden(batch["input_ids"], batch["attention_mask"])
        return self.generation_from_hidden(hidden, batch["labels"]), self.embed_at(hidden, batch["input_ids"])

    def two_pass_query(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The naive alternative the joint pass replaces: a generation pass, then a separate embedding pass
        over the same query + thought (two sets of query-side activations held for backward)."""
        ids, mask = batch["input_ids"], batch["attention_mask"]
        gen = self.generation_from_hidden(self.hidden(ids, mask), batch["labels"])
        return gen, self.embed_at(self.hidden(ids, mask), ids)

    def doc_pass(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.embed_at(self.hidden(batch["input_ids"], batch["attention_mask"]), batch["input_ids"])[-1]

    def forward(self, query: dict[str, torch.Tensor], docs: dict[str, torch.Tensor], two_pass: bool = False):
        """(generation loss, query embedding(s), document embeddings) of a training batch."""
        gen, q = self.two_pass_query(query) if two_pass else self.query_pass(query)
        return gen, q, self.doc_pass(docs)

    # --- inference (eval) ----------------------------------------------------------------------------

    def _device(self) -> torch.device:
        return next(self.lm.parameters()).device

    @torch.no_grad()
    def generate_thoughts(self, queries: Sequence[str], n: int = 3, temperature: float = 0.1, top_p: float = 0.9,
                          max_new_tokens: int = 128, batch_size: int = 16, seed: int | None = None
                          ) -> list[list[str]]:
        """``n`` sampled thoughts per query from ``<query>q</query><thought>`` (§4 defaults)."""
        if seed is not None:
            torch.manual_seed(seed)
        thoughts: list[list[str]] = []
        for start in range(0, len(queries), batch_size):
            enc = o1data.encode_prompts(self.tokenizer, queries[start:start + batch_size], self.seq)
            enc = {k: v.to(self._device()) for k, v in enc.items()}
            out = self.lm.generate(
                **enc, do_sample=temperature > 0, temperature=temperature if temperature > 0 else None,
                top_p=top_p, max_new_tokens=max_new_tokens, num_return_sequences=n,
                eos_token_id=self.ids.eos, pad_token_id=self.ids.pad,
            )
            texts = self.tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            thoughts.extend([t.strip() for t in texts[i:i + n]] for i in range(0, len(texts), n))
        return thoughts

    def query_ids(self, queries: Sequence[str], thoughts: Sequence[str]) -> list[list[int]]:
        """Token ids of each (query, thought) sequence, ``<emb>`` last, unpadded (for vLLM pooling)."""
        enc = o1data.encode_queries(self.tokenizer, list(queries), list(thoughts), self.seq)
        return [ids[mask.bool()].tolist() for ids, mask in zip(enc["input_ids"], enc["attention_mask"])]

    def document_ids(self, docs: Sequence[str]) -> list[list[int]]:
        enc = o1data.encode_documents(self.tokenizer, list(docs), self.seq)
        return [ids[mask.bool()].tolist() for ids, mask in zip(enc["input_ids"], enc["attention_mask"])]

    @torch.no_grad()
    def _embed(self, enc: dict[str, torch.Tensor]) -> torch.Tensor:
        enc = {k: v.to(self._device()) for k, v in enc.items()}
        return self.embed_at(self.hidden(enc["input_ids"], enc["attention_mask"]), enc["input_ids"])[-1].cpu()

    def embed_queries(self, queries: Sequence[str], thoughts: Sequence[Sequence[str]] | Sequence[str] | None = None,
                      batch_size: int = 32) -> torch.Tensor:
        """Query vectors: each (query, thought) encoded with ``<emb>``; several thoughts per query are
        averaged (mean of normalised vectors, not re-normalised, as §4 says). No thoughts: empty thought."""
        if thoughts is None:
            per_query = [[""] for _ in queries]
        else:
            per_query = [[t] if isinstance(t, str) else list(t) for t in thoughts]
        if len(per_query) != len(queries):
            raise ValueError(f"{len(queries)} queries but {len(per_query)} thought lists")
        flat_q = [q for q, ts in zip(queries, per_query) for _ in ts]
        flat_t = [t for ts in per_query for t in ts]
        vectors = []
        for start in range(0, len(flat_q), batch_size):
            enc = o1data.encode_queries(self.tokenizer, flat_q[start:start + batch_size],
                                        flat_t[start:start + batch_size], self.seq)
            vectors.append(self._embed({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}))
        flat = torch.cat(vectors)
        out, i = [], 0
        for ts in per_query:
            out.append(flat[i:i + len(ts)].mean(dim=0))
            i += len(ts)
        return torch.stack(out)

    def embed_documents(self, docs: Sequence[str], batch_size: int = 32) -> torch.Tensor:
        return torch.cat([
            self._embed(o1data.encode_documents(self.tokenizer, docs[s:s + batch_size], self.seq))
            for s in range(0, len(docs), batch_size)
        ])
