"""SMS text → command: the first word decides, in Dutch or English, any case, any accents (pure)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

#: Twilio's opt-out words (and ours): honoured only as the whole message, like Twilio does.
STOP_WORDS = frozenset(
    {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout", "afmelden"}
)
#: Twilio's opt-in words, also whole-message only (and YES, which means more here: `Yes`).
START_WORDS = frozenset({"start", "unstop"})
YES_WORDS = frozenset({"ja", "yes", "j", "y"})
HELP_WORDS = frozenset({"help", "info", "hulp"})
JOIN_WORDS = frozenset({"join", "aanmelden"})
LEAVE_WORDS = frozenset({"leave", "uitschrijven"})
ACK_WORDS = frozenset({"ok", "oke", "okay", "ack", "onderweg"})
ACK_PHRASES = (("ik", "kom"), ("on", "my", "way"))
RESOLVE_WORDS = frozenset({"klaar", "opgelost", "done", "resolved"})
#: TAAL EN, LANGUAGE NL: a resident or responder chooses the language of their messages.
LANGUAGE_WORDS = frozenset({"taal", "language"})
LANGUAGE_NAMES = {"nl": "nl", "nederlands": "nl", "dutch": "nl", "en": "en", "english": "en", "engels": "en"}
#: Command words of one language only. A number in no group has no language yet: it is answered in
#: the language of its word (JOIN, HELP: English; AANMELDEN, HULP: Dutch), and joins in it.
_SAID_IN = {"join": "en", "leave": "en", "help": "en", "aanmelden": "nl", "uitschrijven": "nl", "hulp": "nl"}

#: An answer (OK, KLAAR) without a number is at most this many more words: "Ok, er staat iemand
#: bij de deur" is a signal that starts with "ok", not an answer to pass over.
ANSWER_MAX_EXTRA_WORDS = 2
_NUMBER = re.compile(r"^(?:#|nr\.?|no\.?)?(\d{1,9})$")
_NUMBER_LIKE = re.compile(r"^(?:#|nr\.?|no\.?|-)?\d+$")
#: A number given but unreadable as an incident's (negative, too long): no incident has it, so
#: "KLAAR -1" answers "no such incident" instead of closing the latest one.
UNREADABLE = 0
#: Twilio joins a long SMS up to 1,600 characters; more does not come from a phone.
MAX_TEXT = 1600
#: Longer than any join code (3 to 20 characters), so a cut code still matches none.
_CODE_MAX = 21
_EDGE_PUNCTUATION = ".,!?;:'\"()"


def fold(text: str) -> str:
    """Lower case without accents: "Brånd" and "BRAND" compare equal."""
    if text.isascii():  # most texts: nothing to decompose
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@dataclass(frozen=True)
class Stop:
    """Opt out of everything."""


@dataclass(frozen=True)
class Start:
    """Opt back in."""


@dataclass(frozen=True)
class Help:
    """How it works."""

    #: The language of the word used, where only one language has it (INFO: None).
    said_in: str | None = None


@dataclass(frozen=True)
class Join:
    code: str | None
    name: str | None = None
    said_in: str | None = None


@dataclass(frozen=True)
class Leave:
    code: str | None
    said_in: str | None = None


@dataclass(frozen=True)
class Yes:
    """Accept the group rules, or (with a number, from a coordinator) approve that join request."""

    number: int | None = None
    #: The whole message was YES, which is also Twilio's opt-in word: after STOP it is START.
    twilio_opt_in: bool = False


@dataclass(frozen=True)
class SetLanguage:
    """From now on, messages in this language (the sender's own choice, for all their groups)."""

    language: str


@dataclass(frozen=True)
class Ack:
    number: int | None = None
    #: The words after the number: they may name the group when two have an incident #number.
    words: tuple[str, ...] = ()


@dataclass(frozen=True)
class Resolve:
    number: int | None = None
    words: tuple[str, ...] = ()


@dataclass(frozen=True)
class Signal:
    text: str


Command = Stop | Start | Help | Join | Leave | Yes | SetLanguage | Ack | Resolve | Signal


def _word(token: str) -> str:
    return fold(token).strip(_EDGE_PUNCTUATION)


def _number(tokens: list[str]) -> int | None:
    if not tokens:
        return None
    word = _word(tokens[0])
    match = _NUMBER.match(word)
    if match:
        return int(match.group(1))
    return UNREADABLE if _NUMBER_LIKE.match(word) else None


def _code(tokens: list[str]) -> str | None:
    return _word(tokens[0]).upper()[:_CODE_MAX] if tokens else None


def _clean(text: str) -> str:
    """Cut to MAX_TEXT; control characters become spaces (a phone's CR is a line break, and
    PostgreSQL cannot store a NUL)."""
    text = text[:MAX_TEXT]
    if text.isprintable():  # most texts
        return text
    return "".join(" " if unicodedata.category(char) == "Cc" else char for char in text)


_WHOLE_MESSAGE: dict[str, Command] = {
    **dict.fromkeys(STOP_WORDS, Stop()),
    **dict.fromkeys(START_WORDS, Start()),
    **{word: Help(_SAID_IN.get(word)) for word in HELP_WORDS},
}


def parse(text: str) -> Command:
    """What the sender asks for. Anything that is not a command is a signal."""
    tokens = _clean(text).split()
    words = [_word(token) for token in tokens]
    if len(words) == 1 and words[0] in _WHOLE_MESSAGE:
        return _WHOLE_MESSAGE[words[0]]
    return _with_arguments(words, tokens) or Signal(" ".join(tokens))


def _with_arguments(words: list[str], tokens: list[str]) -> Command | None:
    first, rest = (words[0], tokens[1:]) if words else ("", [])
    if first in JOIN_WORDS:
        return Join(code=_code(rest), name=" ".join(rest[1:])[:100] or None, said_in=_SAID_IN[first])
    if first in LEAVE_WORDS:
        return Leave(code=_code(rest), said_in=_SAID_IN[first])
    if first in YES_WORDS and len(words) <= 2:
        return Yes(_number(rest), twilio_opt_in=words == ["yes"])
    if first in LANGUAGE_WORDS and len(words) == 2 and words[1] in LANGUAGE_NAMES:
        return SetLanguage(LANGUAGE_NAMES[words[1]])
    for phrase in ACK_PHRASES:
        if tuple(words[: len(phrase)]) == phrase:
            return _answer(Ack, tokens[len(phrase) :])
    if first in ACK_WORDS:
        return _answer(Ack, rest)
    if first in RESOLVE_WORDS:
        return _answer(Resolve, rest)
    return None


def _answer(kind: type[Ack] | type[Resolve], rest: list[str]) -> Command | None:
    """An answer when it names an incident (OK 3 ...) or is short; else a signal that starts with OK."""
    number = _number(rest)
    if number is not None:
        return kind(number, tuple(rest[1:]))
    return kind() if len(rest) <= ANSWER_MAX_EXTRA_WORDS else None


def said_in(command: Command) -> str | None:
    """The language the command's word belongs to, if only one has it."""
    match command:
        case Help(said_in=language) | Join(said_in=language) | Leave(said_in=language):
            return language
    return None
