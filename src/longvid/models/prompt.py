"""The text around the video: the checkpoint's chat template when it has one, else ChatML
(the format of every family supported here), split at the video placeholder."""

from __future__ import annotations

from longvid.errors import InvalidRequestError

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% for part in message['content'] %}{% if part['type'] == 'video' %}{{ video }}\n"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def render(question: str, video_text: str, template: str | None) -> str:
    """The prompt as text, with ``video_text`` where the video goes."""
    from jinja2 import Environment

    env = Environment(autoescape=False, keep_trailing_newline=True)
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}]
    text = env.from_string(template or CHATML).render(messages=messages, add_generation_prompt=True, video=video_text)
    if video_text not in text:
        # a template written for a processor renders the video itself as its placeholder
        raise InvalidRequestError("the chat template does not place the video; pass a ChatML template")
    return text


def split_prompt(
    tokenizer, question: str, placeholder: str, template: str | None = None
) -> tuple[list[int], list[int]]:
    """Token ids before and after the video placeholder."""
    text = render(question, placeholder, template)
    before, after = text.split(placeholder, 1)
    encode = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"] if s else []  # noqa: E731
    return encode(before), encode(after)
