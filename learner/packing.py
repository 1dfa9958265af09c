"""How a training batch becomes model inputs: completions of one prompt share a row, rows share micro-batches.

    rows = pack_rows(batch, max_tokens=2048, share_prompts=True)
    for micro in micro_batches(rows, max_tokens=2048):
        t = row_tensors(micro)          # ids, positions, 4D mask, and per completion token: source position, target

Self-play samples come in groups: n solver answers (and n Monte-Carlo solves) to one prompt. Padded one sample per
row, the decoder reads the prompt n times. Here a row holds the prompt once followed by several of its completions;
each completion attends to the prompt and to itself only (a block mask) and its position ids continue from the
prompt's end, so every completion token sees exactly the context it was sampled with, and the loss and gradients
equal those of separate rows (tests/test_learner.py checks this against plain forwards). Rows are ordered longest
first and cut into micro-batches of at most `max_tokens` padded tokens, so little is padding.

Pure torch: no model, no Ray.
"""

from dataclasses import dataclass, field

import torch


@dataclass
class Row:
    prompt: list[int]
    items: list[dict] = field(default_factory=list)  # batch items (dicts with completion_ids, logprobs, ...)

    def __len__(self) -> int:
        return len(self.prompt) + sum(len(b["completion_ids"]) for b in self.items)


def pack_rows(batch: list[dict], max_tokens: int, share_prompts: bool = True) -> list[Row]:
    """One row per sample, or (share_prompts) the samples of one prompt behind one copy of it, a row holding as many
    completions as fit in max_tokens (always at least one)."""
    if not share_prompts:
        return [Row(list(b["prompt_ids"]), [b]) for b in batch]
    groups: dict[tuple, list[dict]] = {}
    for b in batch:
        groups.setdefault(tuple(b["prompt_ids"]), []).append(b)
    rows = []
    for prompt, items in groups.items():
        row = Row(list(prompt))
        for b in sorted(items, key=lambda b: -len(b["completion_ids"])):
            if row.items and len(row) + len(b["completion_ids"]) > max_tokens:
                rows.append(row)
                row = Row(list(prompt))
            row.items.append(b)
        rows.append(row)
    return rows


def micro_batches(rows: list[Row], max_tokens: int) -> list[list[Row]]:
    """Rows longest first, grouped so each group's padded size (rows x longest row) stays within max_tokens."""
    out: list[list[Row]] = []
    longest = 0
    for row in sorted(rows, key=len, reverse=True):
        if out and out[-1] and max(longest, len(row)) * (len(out[-1]) + 1) <= max_tokens:
            out[-1].append(row)
        else:
            out.append([row])
            longest = len(row)
    return out


def row_tensors(micro: list[Row], device: torch.device | str = "cpu") -> dict:
    """Inputs of one micro-batch: ids, position_ids and a boolean (B, 1, T, T) attention mask (True: may attend),
    and for each completion token, flattened over the batch: `source` (index into B * T of the position whose
    output predicts it), `target`, behaviour log-prob `old`, advantage `adv` and loss `weight`."""
    T = max(len(r) for r in micro)
    B = len(micro)
    ids = torch.zeros(B, T, dtype=torch.long)
    pos = torch.zeros(B, T, dtype=torch.long)
    mask = torch.zeros(B, 1, T, T, dtype=torch.bool)
    mask[:, 0] = torch.eye(T, dtype=torch.bool)  # padding attends to itself: no empty softmax rows, no NaN
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    source, target, old, adv, weight = [], [], [], [], []
    for i, row in enumerate(micro):
        P = len(row.prompt)
        ids[i, :P] = torch.tensor(row.prompt)
        pos[i, :P] = torch.arange(P)
        mask[i, 0, :P, :P] = causal[:P, :P]
        start = P
        for b in row.items:
            c = list(b["completion_ids"])
            end = start + len(c)
            ids[i, start:end] = torch.tensor(c)
            pos[i, start:end] = torch.arange(P, P + len(c))
            mask[i, 0, start:end, :P] = True
            mask[i, 0, start:end, start:end] = causal[:len(c), :len(c)]
            # token 0 is predicted by the prompt's last position, token j by the completion's token j - 1
            source += [i * T + P - 1] + [i * T + start + j for j in range(len(c) - 1)]
            target += c
            old += [float(x) for x in b["logprobs"]]
            adv += [float(b["advantage"])] * len(c)
            weight += [float(b["token_weight"])] * len(c)
            start = end
    as_float = dict(dtype=torch.float32, device=device)
    return {"ids": ids.to(device), "positions": pos.to(device), "mask": mask.to(device),
            "source": torch.tensor(source, dtype=torch.long, device=device),
            "target": torch.tensor(target, dtype=torch.long, device=device),
            "old": torch.tensor(old, **as_float), "adv": torch.tensor(adv, **as_float),
            "weight": torch.tensor(weight, **as_float),
            "tokens": sum(len(r) for r in micro), "padded": B * T}
