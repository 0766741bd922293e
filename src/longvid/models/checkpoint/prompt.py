"""The text around the video, as the official processor makes it.

The chat template is rendered by transformers' own machinery (``apply_chat_template``, which
knows transformers' extensions such as ``{% generation %}``) with one user turn: the video,
then the question. The whole rendered prompt is tokenized at once with the tokenizer's
special tokens (a Llama tokenizer's BOS), exactly as the processor's ``tokenizer(text)``
does, and split at the family's video token: the ids before and after it. Tokenizing the
pieces separately would differ (a Llama tokenizer puts a "▁" before text it starts on).
"""

from __future__ import annotations

from longvid.errors import InvalidRequestError, ModelLoadError


def chatml(video_markup: str) -> str:
    """A ChatML template that places ``video_markup`` where the video goes (for checkpoints
    that ship no template, such as longvid's tiny ones)."""
    return (
        "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
        "{% for part in message['content'] %}{% if part['type'] == 'video' %}" + video_markup + "\n"
        "{% else %}{{ part['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )


def messages(question: str, history: tuple[tuple[str, str], ...] = ()) -> list[dict]:
    """One user turn with the video and the first question; then each earlier (question,
    answer) as turns, and ``question`` last (a follow-up)."""
    if not history:
        return [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}]
    (first, answer), *rest = history
    turns = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": first}]},
             {"role": "assistant", "content": [{"type": "text", "text": answer}]}]  # fmt: skip
    for q, a in rest:
        turns += [{"role": "user", "content": [{"type": "text", "text": q}]},
                  {"role": "assistant", "content": [{"type": "text", "text": a}]}]  # fmt: skip
    return [*turns, {"role": "user", "content": [{"type": "text", "text": question}]}]


def render(tokenizer, question: str, template: str, history: tuple[tuple[str, str], ...] = ()) -> str:
    """The prompt as text, the video as the template writes it."""
    try:
        return tokenizer.apply_chat_template(
            messages(question, history), chat_template=template, add_generation_prompt=True, tokenize=False
        )
    except Exception as e:  # jinja's errors have no common base worth naming here
        raise ModelLoadError(f"cannot render the chat template: {type(e).__name__}: {e}") from e


def split_ids(tokenizer, text: str, video_token: str) -> tuple[list[int], list[int]]:
    """Token ids of ``text`` before and after its one ``video_token``."""
    video_id = tokenizer.convert_tokens_to_ids(video_token)
    if video_id is None or video_id == tokenizer.unk_token_id:
        raise ModelLoadError(f"the tokenizer has no {video_token!r} token")
    ids = tokenizer(text)["input_ids"]
    at = [i for i, t in enumerate(ids) if t == video_id]
    if len(at) != 1:
        raise InvalidRequestError(
            f"the prompt must hold the video token {video_token!r} once (found {len(at)}); "
            "a question cannot contain it, and the chat template must place the video"
        )
    return ids[: at[0]], ids[at[0] + 1 :]


def split_prompt(tokenizer, question: str, video_token: str, template: str) -> tuple[list[int], list[int]]:
    """Token ids before and after the video for ``question``."""
    return split_ids(tokenizer, render(tokenizer, question, template), video_token)
