"""Every text alertnet sends, in Dutch and English, kept GSM-7 (pure)."""

from __future__ import annotations

from typing import Any

from . import gsm

LANGUAGES = ("nl", "en")
#: The longest resident text passed on in one alert.
SIGNAL_CHARS = 300

TEXTS: dict[str, dict[str, str]] = {
    "fanout": {
        "nl": "[{group} #{n}] {text}\nGa samen kijken, wees zichtbaar, geen geweld. Ga je? Stuur OK {n}",
        "en": "[{group} #{n}] {text}\nGo together, be visible, never use force. Going? Reply OK {n}",
    },
    "signal_sent": {
        "nl": "Melding #{n} is doorgestuurd naar {count} bondgenoten.",
        "en": "Alert #{n} was sent to {count} allies.",
    },
    "signal_joined": {
        "nl": "Je melding is toegevoegd aan #{n} en doorgestuurd naar {count} bondgenoten.",
        "en": "Your message was added to #{n} and sent to {count} allies.",
    },
    "call_112": {
        "nl": " In gevaar? Bel eerst 112.",
        "en": " In danger? Call 112 first.",
    },
    "flood_limited": {
        "nl": "Je melding is bij #{n} bewaard maar niet opnieuw verstuurd: je stuurde er veel "
        "kort na elkaar. In gevaar? Bel 112.",
        "en": "Your message was added to #{n} but not sent again: you sent many in a short time. "
        "In danger? Call 112.",
    },
    "duplicate": {
        "nl": "Deze melding hadden we al (#{n}).",
        "en": "We already had this message (#{n}).",
    },
    "empty": {
        "nl": "Je bericht was leeg. Zie je iets? Beschrijf wat er gebeurt en waar.",
        "en": "Your message was empty. Seen something? Describe what is happening and where.",
    },
    "join_instructions": {
        "nl": "Dit is het buurtalarm. Aanmelden: stuur AANMELDEN en de code van je groep. "
        "To join: text JOIN and your group's code. In gevaar/danger: 112.",
        "en": "This is the neighbourhood alert. To join: text JOIN and your group's code. "
        "Aanmelden: stuur AANMELDEN en de code. In danger: 112.",
    },
    "join_needs_code": {
        "nl": "Stuur AANMELDEN gevolgd door de code van je groep, bijvoorbeeld: AANMELDEN MOLEN Ans",
        "en": "Text JOIN followed by your group's code, for example: JOIN MOLEN Ans",
    },
    "unknown_code": {
        "nl": "De code {code} kennen we niet. Vraag je buurtcoordinator om de juiste code.",
        "en": "We do not know the code {code}. Ask your neighbourhood coordinator for the right one.",
    },
    "join_rules": {
        "nl": "Welkom bij {group}. Afspraken: beschrijf gedrag, kleding en plek; geen foto's of namen; "
        "nooit zelf ingrijpen; in gevaar eerst 112. Akkoord? Antwoord JA",
        "en": "Welcome to {group}. Rules: describe behaviour, clothing and place; no photos or names; "
        "never intervene yourself; in danger call 112 first. Agree? Reply YES",
    },
    "already_member": {
        "nl": "Je bent al lid van {group}.",
        "en": "You are already a member of {group}.",
    },
    "awaiting_approval": {
        "nl": "Bedankt! Een coordinator van {group} keurt je aanmelding goed; je krijgt dan een sms.",
        "en": "Thank you! A coordinator of {group} will approve you; you will get a text.",
    },
    "still_pending": {
        "nl": "Je aanmelding wacht nog op goedkeuring. In gevaar? Bel 112.",
        "en": "Your membership is waiting for approval. In danger? Call 112.",
    },
    "welcome": {
        "nl": "Je bent lid van {group}. Zie je iets verdachts? Sms het naar dit nummer; je bondgenoten "
        "krijgen het zonder je nummer. Stoppen: STOP",
        "en": "You are a member of {group}. Seen something suspicious? Text it to this number; your allies "
        "get it without your number. To stop: STOP",
    },
    "approve_request": {
        "nl": "Aanmelding voor {group}: {name} ({phone}). Goedkeuren? Antwoord JA {id}",
        "en": "Join request for {group}: {name} ({phone}). Approve? Reply YES {id}",
    },
    "approved": {
        "nl": "{name} is toegelaten tot {group}.",
        "en": "{name} was admitted to {group}.",
    },
    "nothing_to_approve": {
        "nl": "Er wacht geen aanmelding met nummer {id} op jouw goedkeuring.",
        "en": "No join request number {id} is waiting for your approval.",
    },
    "nothing_to_confirm": {
        "nl": "Er is niets om te bevestigen. Hulp? Stuur HULP",
        "en": "There is nothing to confirm. Help? Text HELP",
    },
    "stopped": {
        "nl": "Je krijgt geen berichten meer van het buurtalarm. Weer meedoen? Stuur START",
        "en": "You will get no more messages from the neighbourhood alert. To rejoin, text START",
    },
    "started": {
        "nl": "Welkom terug: je krijgt weer meldingen.",
        "en": "Welcome back: you will get alerts again.",
    },
    "already_active": {
        "nl": "Je krijgt al meldingen van het buurtalarm.",
        "en": "You already get the neighbourhood alerts.",
    },
    "responder_stopped": {
        "nl": "{name} ({role}) stuurde STOP: geen alarmen tot START. De keten van {group} "
        "slaat deze persoon over. Pas de keten zo nodig aan.",
        "en": "{name} ({role}) texted STOP: no alarms until START. The chain of {group} "
        "skips them. Change the chain if needed.",
    },
    "left": {
        "nl": "Je bent uitgeschreven bij {group}.",
        "en": "You have left {group}.",
    },
    "not_member": {
        "nl": "Je bent geen lid van {code}.",
        "en": "You are not a member of {code}.",
    },
    "leave_needs_code": {
        "nl": "Stuur UITSCHRIJVEN en de code van de groep. Alles stoppen? Stuur STOP",
        "en": "Text LEAVE and the group's code. Stop everything? Text STOP",
    },
    "escalation": {
        "nl": "ALARM {group} #{n}: {reporters} melder(s). {texts}\nGaat u? Antwoord OK {n}. "
        "Opgelost: KLAAR {n}",
        "en": "ALERT {group} #{n}: {reporters} reporter(s). {texts}\nGoing? Reply OK {n}. Resolved: DONE {n}",
    },
    "caller": {
        "nl": "Melder: {phone}",
        "en": "Reporter: {phone}",
    },
    "ally_going": {
        "nl": "[{group} #{n}] Een buur gaat kijken. Ga je mee? Samen, zichtbaar, geen geweld.",
        "en": "[{group} #{n}] A neighbour is going to look. Join them? Together, visible, no force.",
    },
    "responder_on_it": {
        "nl": "[{group} #{n}] De buurtregisseur of politie is ingeschakeld.",
        "en": "[{group} #{n}] The neighbourhood officer or police has been called in.",
    },
    "outcome": {
        "nl": "[{group} #{n}] Afgesloten: {outcome} Dank voor jullie hulp.",
        "en": "[{group} #{n}] Closed: {outcome} Thank you for your help.",
    },
    "outcome_default": {
        "nl": "opgelost.",
        "en": "resolved.",
    },
    "outcome_false_alarm": {
        "nl": "loos alarm.",
        "en": "false alarm.",
    },
    "outcome_expired": {
        "nl": "geen nieuwe meldingen meer.",
        "en": "no new reports.",
    },
    "outcome_group_deleted": {
        "nl": "de groep is opgeheven.",
        "en": "the group was removed.",
    },
    "nobody_answered": {
        "nl": "[{group} #{n}] Geen hulpverlener antwoordde. Bij gevaar: bel 112. Geen spoed: 0900-8844.",
        "en": "[{group} #{n}] No responder answered. In danger: call 112. No emergency: 0900-8844.",
    },
    "ack_thanks": {
        "nl": "Dank je! Je bondgenoten horen dat er iemand gaat (#{n}). Samen, zichtbaar, nooit geweld.",
        "en": "Thank you! Your allies hear someone is going (#{n}). Together, visible, never force.",
    },
    "responder_thanks": {
        "nl": "Bedankt. De buurt hoort dat u eraan werkt (#{n}). Afsluiten: KLAAR {n}",
        "en": "Thank you. The neighbourhood hears you are on it (#{n}). To close: DONE {n}",
    },
    "resolved_thanks": {
        "nl": "#{n} is afgesloten. Iedereen die een melding kreeg hoort het.",
        "en": "#{n} is closed. Everyone who was alerted will hear it.",
    },
    "no_incident": {
        "nl": "Er is geen open melding om op te antwoorden.",
        "en": "There is no open alert to answer.",
    },
    "reporter_ok": {
        "nl": "Je meldde #{n} zelf; je buren hebben het bericht. Wie gaat kijken, stuurt OK.",
        "en": "You reported #{n} yourself; your neighbours have it. Whoever goes to look replies OK.",
    },
    "which_incident": {
        "nl": "Er lopen meerdere meldingen #{n}: {groups}. Noem de groep erbij, bijvoorbeeld: {example}",
        "en": "There are several alerts #{n}: {groups}. Name the group too, for example: {example}",
    },
    "already_resolved": {
        "nl": "Melding #{n} is al afgesloten.",
        "en": "Alert #{n} is already closed.",
    },
    "not_allowed_to_resolve": {
        "nl": "Alleen een coordinator of de buurtregisseur kan een melding afsluiten.",
        "en": "Only a coordinator or the neighbourhood officer can close an alert.",
    },
    "help": {
        "nl": "Buurtalarm: sms wat je ziet naar dit nummer; je bondgenoten krijgen het zonder je nummer. "
        "OK = ik ga kijken. STOP = afmelden. In gevaar? Bel eerst 112. English? Reply LANGUAGE EN",
        "en": "Neighbourhood alert: text what you see to this number; your allies get it without your "
        "number. OK = I'll go and look. STOP = unsubscribe. In danger? Call 112 first. Nederlands? TAAL NL",
    },
    "language_set": {
        "nl": "Je berichten komen nu in het Nederlands. English? Reply LANGUAGE EN",
        "en": "Your messages now come in English. Nederlands? Stuur TAAL NL",
    },
    "responder_help": {
        "nl": "Buurtalarm: bij een ALARM roepen de buren je hulp in. OK n = ik neem het op. "
        "KLAAR n = afgesloten, iedereen hoort het. STOP = geen berichten meer.",
        "en": "Neighbourhood alert: an ALERT means the neighbours call on you. OK n = I'm on it. "
        "DONE n = closed, everyone hears it. STOP = no more messages.",
    },
}


#: For whoever has no language of their own yet (a number in no group that used no telling word).
DEFAULT_LANGUAGE = "nl"


def language(preferred: str | None) -> str:
    return preferred if preferred in LANGUAGES else DEFAULT_LANGUAGE


def render(key: str, lang: str | None, **values: Any) -> str:
    """The text `key` in the member's language, filled in and made GSM-7."""
    template = TEXTS[key][language(lang)]
    return gsm.sanitize(template.format(**{k: _clean(v) for k, v in values.items()}))


def _clean(value: Any) -> Any:
    return " ".join(value.split()) if isinstance(value, str) else value


def fanout(lang: str | None, *, group: str, number: int, text: str, first_name: str | None) -> str:
    """The alert an ally receives: group, #n, what was seen, how to respond; never the sender's number."""
    said = gsm.shorten(_clean(text), SIGNAL_CHARS) + (f" - {first_name}" if first_name else "")
    return render("fanout", lang, group=group, n=number, text=said)


#: The most text of the signals a responder gets in one page.
ESCALATION_TEXT_CHARS = 240


def escalation(
    lang: str | None, *, group: str, number: int, reporters: int, texts: list[str], caller: str | None
) -> str:
    """The page a responder gets: every signal so far, newest last, shortened to fit; how to answer."""
    joined = " / ".join(_clean(text) for text in texts)
    shown = gsm.shorten(joined, ESCALATION_TEXT_CHARS)
    if caller:
        shown += " " + render("caller", lang, phone=caller)
    return render("escalation", lang, group=group, n=number, reporters=reporters, texts=shown)


def first_name(name: str | None) -> str | None:
    return name.split()[0][:30] if name and name.split() else None
