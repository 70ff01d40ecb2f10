"""Telegram-style HTML parsing: turns `parse_mode=HTML` text into plain text plus entities."""

from __future__ import annotations

import re
from typing import Any

Entity = dict[str, Any]

# Tag name -> entity type; Telegram rejects every other tag.
_SIMPLE_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "code": "code",
    "pre": "pre",
    "tg-spoiler": "spoiler",
}
_SUPPORTED_TAGS = {*_SIMPLE_TAGS, "a", "span", "blockquote", "tg-emoji", "tg-time"}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY_RE = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z]{2,4});")
_NAME_CHARS = re.compile(r"[a-zA-Z0-9-]*")
_BOT_COMMAND_RE = re.compile(r"(?<![\w/])/[a-zA-Z0-9_]{1,32}(?:@[a-zA-Z0-9_]{3,32})?(?![\w/])")


class EntityParseError(ValueError):
    """Broken HTML; the message is the part after "can't parse entities: "."""


def utf16_len(text: str) -> int:
    """Telegram measures entity offsets and lengths in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(source: str, index: int) -> int:
    return len(source[:index].encode("utf-8"))


class _OpenTag:
    def __init__(self, name: str, attrs: dict[str, str], start: int) -> None:
        self.name = name
        self.attrs = attrs
        self.start = start  # offset in the plain text, in UTF-16 units


def parse_html(source: str) -> tuple[str, list[Entity]]:
    """Parse Telegram's HTML subset; raise EntityParseError with Telegram's wording."""
    out: list[str] = []
    out_len = 0  # UTF-16 length of the text produced so far
    stack: list[_OpenTag] = []
    entities: list[Entity] = []
    i = 0
    n = len(source)
    while i < n:
        ch = source[i]
        if ch == "&":
            match = _ENTITY_RE.match(source, i)
            decoded = _decode_entity(match.group(1)) if match else None
            if match and decoded is not None:
                out.append(decoded)
                out_len += utf16_len(decoded)
                i = match.end()
                continue
            out.append("&")
            out_len += 1
            i += 1
            continue
        if ch != "<":
            out.append(ch)
            out_len += utf16_len(ch)
            i += 1
            continue
        tag_offset = _byte_offset(source, i)
        if source.startswith("</", i):
            name_match = _NAME_CHARS.match(source, i + 2)
            assert name_match is not None
            name = name_match.group().lower()
            j = name_match.end()
            while j < n and source[j].isspace():
                j += 1
            if j >= n or source[j] != ">":
                raise EntityParseError(f"Unclosed end tag at byte offset {tag_offset}")
            if not stack:
                raise EntityParseError(f"Unexpected end tag at byte offset {tag_offset}")
            top = stack[-1]
            if name != top.name:
                raise EntityParseError(
                    f'Unmatched end tag at byte offset {tag_offset}, expected "</{top.name}>", '
                    f'found "</{name}>"'
                )
            stack.pop()
            _close(top, out_len, stack, entities)
            i = j + 1
            continue
        name_match = _NAME_CHARS.match(source, i + 1)
        assert name_match is not None
        name = name_match.group().lower()
        if name not in _SUPPORTED_TAGS:
            raise EntityParseError(f'Unsupported start tag "{name}" at byte offset {tag_offset}')
        attrs, i = _parse_attributes(source, name_match.end(), name, tag_offset)
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise EntityParseError(
                f'Tag "span" must have class "tg-spoiler" at byte offset {tag_offset}'
            )
        stack.append(_OpenTag(name, attrs, out_len))
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _decode_entity(body: str) -> str | None:
    if body.startswith(("#x", "#X")):
        code = int(body[2:], 16)
    elif body.startswith("#"):
        code = int(body[1:])
    else:
        return _NAMED_ENTITIES.get(body)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code)


def _parse_attributes(source: str, i: int, tag: str, tag_offset: int) -> tuple[dict[str, str], int]:
    """Read attributes up to the closing '>'; return them and the index after '>'."""
    attrs: dict[str, str] = {}
    n = len(source)
    while True:
        while i < n and source[i].isspace():
            i += 1
        if i >= n:
            raise EntityParseError(f"Unclosed start tag at byte offset {tag_offset}")
        if source[i] == ">":
            return attrs, i + 1
        name_match = _NAME_CHARS.match(source, i)
        assert name_match is not None
        attr = name_match.group().lower()
        if not attr:
            raise EntityParseError(
                f'Empty attribute name in the tag "{tag}" at byte offset {tag_offset}'
            )
        i = name_match.end()
        while i < n and source[i].isspace():
            i += 1
        if i < n and source[i] != "=":
            attrs[attr] = ""  # valueless attribute such as <blockquote expandable>
            continue
        if i >= n:
            raise EntityParseError(f"Unclosed start tag at byte offset {tag_offset}")
        i += 1
        while i < n and source[i].isspace():
            i += 1
        if i >= n:
            raise EntityParseError(f"Unclosed start tag at byte offset {tag_offset}")
        if source[i] in "'\"":
            quote = source[i]
            end = source.find(quote, i + 1)
            if end < 0:
                raise EntityParseError(f"Unclosed start tag at byte offset {tag_offset}")
            raw = source[i + 1 : end]
            i = end + 1
        else:
            end = i
            while end < n and not source[end].isspace() and source[end] != ">":
                end += 1
            raw = source[i:end]
            i = end
        attrs[attr] = parse_html_attribute(raw)


def parse_html_attribute(raw: str) -> str:
    """Attribute values may hold &amp; and friends too."""
    return _ENTITY_RE.sub(lambda m: _decode_entity(m.group(1)) or m.group(0), raw)


def _close(tag: _OpenTag, end: int, stack: list[_OpenTag], entities: list[Entity]) -> None:
    length = end - tag.start
    if length <= 0:
        return  # Telegram drops empty entities
    entity: Entity = {"offset": tag.start, "length": length}
    if tag.name in _SIMPLE_TAGS:
        entity["type"] = _SIMPLE_TAGS[tag.name]
        if tag.name == "code" and stack and stack[-1].name == "pre":
            # <pre><code class="language-x"> is one pre entity, with a language if given.
            language = tag.attrs.get("class", "")
            if language.startswith("language-"):
                stack[-1].attrs["language"] = language.removeprefix("language-")
            return
    elif tag.name == "span":
        entity["type"] = "spoiler"
    elif tag.name == "blockquote":
        entity["type"] = "expandable_blockquote" if "expandable" in tag.attrs else "blockquote"
    elif tag.name == "a":
        href = tag.attrs.get("href", "")
        if not href:
            return
        entity.update(type="text_link", url=href)
    elif tag.name == "tg-emoji":
        entity.update(type="custom_emoji", custom_emoji_id=tag.attrs.get("emoji-id", ""))
    elif tag.name == "tg-time":
        entity.update(type="date_time", unix_time=int(tag.attrs.get("unix", "0") or 0))
        if tag.attrs.get("format"):
            entity["date_time_format"] = tag.attrs["format"]
    if tag.name == "pre" and tag.attrs.get("language"):
        entity["language"] = tag.attrs["language"]
    entities.append(entity)


def trim(text: str, entities: list[Entity]) -> tuple[str, list[Entity]]:
    """Telegram strips leading and trailing whitespace and clips entities to what is left."""
    stripped = text.strip()
    if not stripped:
        return "", []
    head = utf16_len(text[: len(text) - len(text.lstrip())])
    size = utf16_len(stripped)
    result: list[Entity] = []
    for entity in entities:
        start = max(entity["offset"] - head, 0)
        end = min(entity["offset"] + entity["length"] - head, size)
        if end > start:
            result.append({**entity, "offset": start, "length": end - start})
    return stripped, result


def bot_command_entities(text: str) -> list[Entity]:
    """Entities Telegram adds to a user's text for /commands."""
    return [
        {
            "type": "bot_command",
            "offset": utf16_len(text[: m.start()]),
            "length": utf16_len(m.group()),
        }
        for m in _BOT_COMMAND_RE.finditer(text)
    ]
