"""Turning a message's facts into words: Jinja2 templates, Babel catalogs, persona voice.

Each template key (a journey step's `template`, or a task's `script` for the phone) has one
file, `templates/messages/<key>.j2`, written in English inside `{% trans %}` blocks. It
sets only the words that carry the persona's voice (`subject`, `body`, `sms`, `title`,
`lines`, optionally `cta`, `cta_link`, `closing`); the layouts of `templates/layouts/`
add the facts every message must carry — amount, pay-by date, structured communication,
pay link, help, opt-out, the free first reminder, each fee on its own line — so no voice
can forget them. `templates/parts.j2` holds those shared sentences as plain text, and the
HTML layout prints only plain strings, so autoescaping covers every value it shows. A
service message — one the debtor asked for, such as the notice of a chat answer — sets
`service = true` and gets `templates/layouts/service/`: its link, help and opt-out, and
none of the collection facts.

Catalogs (`locale/<lang>/LC_MESSAGES/messages.po`) are compiled in memory when the
renderer starts: no build step, no binary in the repository. An operator directory may
add or override templates (`<dir>/messages/<key>.j2`, searched first) and catalog entries
(`<dir>/locale/<lang>/LC_MESSAGES/messages.po`). `Renderer.validate` reports what would go
wrong at send time: a missing template, a missing translation, a variable a template
needs but does not get, an SMS leaving the GSM alphabet.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import re
import unicodedata
from collections.abc import Iterable, Mapping
from decimal import Decimal
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Final, cast

import jinja2
import phonenumbers
import yaml
from babel.dates import format_date
from babel.messages.catalog import Catalog
from babel.messages.extract import extract
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency
from babel.support import Translations
from jinja2.runtime import Context

from parcours.channels.content import (
    LANGUAGES,
    Address,
    Channel,
    CreditorProfile,
    EmailBody,
    FeeLine,
    InvoiceLine,
    LetterBody,
    MessageContent,
    PhoneScript,
    Rendered,
    SmsBody,
)
from parcours.channels.gsm import characters_forcing_ucs2, gsm_friendly, segments
from parcours.domain.errors import DomainError
from parcours.domain.money import currency_exponent
from parcours.domain.structured_communication import StructuredCommunication

# The legal figures a first reminder announces. They live with the rest of Book XIX;
# channels otherwise import only the domain (see the report: move them there or put the
# announced fees on MessageContent).
from parcours.journeys.law import REMINDER_FEE_CAP_MINOR, flat_indemnity_cap

__all__ = [
    "LOCALES",
    "Renderer",
    "TemplateError",
    "builtin_requirements",
    "get_renderer",
    "locale_for",
    "sample_content",
]

LOCALES: Final = {"fr": "fr_BE", "nl": "nl_BE", "en": "en_BE"}
SOURCE_LANGUAGE: Final = "en"  # templates are written in it; its catalog may stay empty
MAX_SMS_SEGMENTS: Final = 3

_HERE: Final = Path(__file__).resolve().parent
_TEMPLATES: Final = _HERE / "templates"
_LOCALE: Final = _HERE / "locale"
_BUILTIN_JOURNEYS: Final = _HERE.parent / "journeys" / "library"
_DOMAIN: Final = "messages"
_EXTRACTOR: Final = "jinja2.ext:babel_extract"

# What a message file must set for each channel it can be sent on.
_NEEDS: Final[dict[Channel, tuple[str, ...]]] = {
    Channel.EMAIL: ("subject", "body"),
    Channel.LETTER: ("subject", "body"),
    Channel.SMS: ("sms",),
    Channel.PHONE: ("title", "lines"),
}
_PLACEHOLDER: Final = re.compile(r"%\((\w+)\)s")
_BLANK_RUNS: Final = re.compile(r"\n{3,}")
_CONTROL: Final = frozenset({"Cc", "Zl", "Zp"})  # line breaks and control codes


class TemplateError(DomainError):
    """Templates or catalogs are unusable; `problems` lists every one found."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


def locale_for(language: str) -> str:
    """The Babel locale of a message language: Belgian French, Dutch or English."""
    try:
        return LOCALES[language]
    except KeyError:
        raise TemplateError([f"language {language!r} is not one of {', '.join(LOCALES)}"]) from None


def _message_name(key: str) -> str:
    return f"messages/{key}.j2"


# --- catalogs ---------------------------------------------------------------------------


def _read_catalog(path: Path, language: str) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle, locale=locale_for(language), domain=_DOMAIN)


def _compile(catalog: Catalog) -> Translations:
    """A catalog as gettext translations, compiled in memory (fuzzy entries left out)."""
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(fp=buffer, domain=_DOMAIN)


def _catalog_paths(language: str, operator_dir: Path | None) -> list[Path]:
    paths = [_LOCALE / language / "LC_MESSAGES" / f"{_DOMAIN}.po"]
    if operator_dir is not None:
        extra = operator_dir / "locale" / language / "LC_MESSAGES" / f"{_DOMAIN}.po"
        if extra.is_file():
            paths.append(extra)
    return paths


# --- the facts, formatted ---------------------------------------------------------------


@lru_cache(maxsize=4096)
def _money(minor: int, currency: str, locale: str) -> str:
    amount = Decimal(minor).scaleb(-currency_exponent(currency))
    return format_currency(amount, currency, locale=locale)


@lru_cache(maxsize=4096)
def _date(day: dt.date, locale: str, numeric: bool) -> str:
    if numeric:  # SMS: digits never leave the GSM alphabet ("août" would)
        return format_date(day, "dd/MM/yyyy", locale=locale)
    return format_date(day, "long", locale=locale)


def _one_line(text: str) -> str:
    """Free text on one line, without control characters: a name cannot forge lines."""
    kept = "".join(" " if unicodedata.category(c) in _CONTROL else c for c in text)
    return " ".join(kept.split())


@lru_cache(maxsize=1024)
def _phone(e164: str) -> str:
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def _iban(iban: str) -> str:
    compact = iban.replace(" ", "")
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def _first_reminder(content: MessageContent) -> bool:
    """A Book XIX first reminder, which must say it is free of charge."""
    return content.reminder and content.template.startswith("reminder_1")


def _variables(content: MessageContent) -> dict[str, Any]:
    """What templates see: the content's facts formatted for its language and channel."""
    locale = locale_for(content.language)
    cur = content.currency
    sms = Channel(content.channel) is Channel.SMS

    def money(minor: int) -> str:
        return _money(minor, cur, locale)

    def date(day: dt.date, *, numeric: bool = False) -> str:
        return _date(day, locale, numeric)

    creditor = content.creditor
    indemnity = flat_indemnity_cap(content.invoices_minor)
    return {
        "language": content.language,
        "locale": locale,
        "channel": str(content.channel),
        "template": content.template,
        "persona": content.persona or "",
        "name": _one_line(content.debtor_name),
        "creditor_name": _one_line(creditor.name),
        "creditor_address": ", ".join(part for part in creditor.address.lines()[1:-1] if part),
        "company_number": creditor.company_number or "",
        "case_ref": content.case_ref,
        "amount": money(content.total_minor),
        "invoices_amount": money(content.invoices_minor),
        "pay_by": date(content.pay_by, numeric=sms),
        "comm": content.structured_communication.formatted,
        "iban": _iban(creditor.iban),
        "bic": creditor.bic or "",
        "pay_link": content.pay_link,
        "opt_out_link": content.opt_out_link,
        "chat_link": content.chat_link or content.pay_link,
        "help_email": creditor.help_email,
        "help_phone": _phone(creditor.help_phone),
        "help_phone_uri": f"tel:{creditor.help_phone}",
        "invoices": [
            {
                "ref": _one_line(line.ref),
                "due_on": date(line.due_on, numeric=sms),
                "amount": money(line.open_minor),
            }
            for line in content.invoices
        ],
        "fees": [
            {
                "kind": fee.kind,
                "amount": money(fee.amount_minor),
                "legal_basis": _one_line(fee.legal_basis),
            }
            for fee in content.fees
        ],
        "reminder": content.reminder,
        "first_reminder": _first_reminder(content),
        "max_reminder_fee": money(REMINDER_FEE_CAP_MINOR),
        "max_indemnity": money(indemnity),
        "max_fees": money(REMINDER_FEE_CAP_MINOR + indemnity),
    }


def _lines(text: str) -> tuple[str, ...]:
    """Non-empty lines, each with its spaces collapsed (a trans block is one line)."""
    return tuple(" ".join(line.split()) for line in text.split("\n") if line.strip())


def _paragraphs(text: str) -> tuple[str, ...]:
    """Blocks separated by blank lines, each keeping its own line breaks."""
    blocks = re.split(r"\n\s*\n", text.strip())
    return tuple("\n".join(_lines(block)) for block in blocks if block.strip())


# --- the renderer -----------------------------------------------------------------------


class Renderer:
    """Renders a `MessageContent` into the body its channel's provider sends."""

    def __init__(self, operator_dir: Path | None = None) -> None:
        self.operator_dir = operator_dir
        loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(_TEMPLATES)]
        if operator_dir is not None:
            if not operator_dir.is_dir():
                raise TemplateError([f"{operator_dir}: templates directory does not exist"])
            loaders.insert(0, jinja2.FileSystemLoader(operator_dir))  # searched first
        self.loader = jinja2.ChoiceLoader(loaders)
        self.env = jinja2.Environment(
            loader=self.loader,
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html.j2",), default_for_string=False, default=False
            ),
            undefined=jinja2.StrictUndefined,
            extensions=["jinja2.ext.i18n"],
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        # One line per trans block, whatever the template's line breaks: stable msgids.
        self.env.policies["ext.i18n.trimmed"] = True
        self.catalogs: dict[str, list[Catalog]] = {}
        self.translations: dict[str, Translations] = {}
        problems: list[str] = []
        for language in LANGUAGES:
            catalogs: list[Catalog] = []
            for path in _catalog_paths(language, operator_dir):
                try:
                    catalogs.append(_read_catalog(path, language))
                except (OSError, ValueError) as exc:
                    problems.append(f"{path}: cannot read: {exc}")
            self.catalogs[language] = catalogs
            translations = Translations(domain=_DOMAIN)
            for catalog in catalogs:  # the operator's, read last, wins
                translations.merge(_compile(catalog))
            self.translations[language] = translations
        if problems:
            raise TemplateError(problems)
        cast(Any, self.env).install_gettext_callables(
            gettext=self._gettext, ngettext=self._ngettext, newstyle=True
        )

    @jinja2.pass_context
    def _gettext(self, context: Context, message: str) -> str:
        return str(self.translations[context["language"]].gettext(message))

    @jinja2.pass_context
    def _ngettext(self, context: Context, singular: str, plural: str, n: int) -> str:
        return str(self.translations[context["language"]].ngettext(singular, plural, n))

    # -- what exists -----------------------------------------------------------------

    def template_keys(self) -> list[str]:
        """Every message key with a template (built-in and operator)."""
        names = self.env.list_templates(filter_func=lambda n: n.startswith("messages/"))
        return sorted({Path(n).name.removesuffix(".j2") for n in names if n.endswith(".j2")})

    def channels_of(self, key: str) -> frozenset[Channel]:
        """The channels a message file can be rendered on (from the names it sets)."""
        try:
            source, _, _ = self.loader.get_source(self.env, _message_name(key))
        except jinja2.TemplateNotFound:
            return frozenset()
        try:
            tree = self.env.parse(source)
        except jinja2.TemplateSyntaxError:
            return frozenset()
        names = {
            node.target.name
            for node in tree.body
            if isinstance(node, jinja2.nodes.Assign | jinja2.nodes.AssignBlock)
            and isinstance(node.target, jinja2.nodes.Name)
        }
        found = {ch for ch, needs in _NEEDS.items() if names.issuperset(needs)}
        if "subject" in names:  # any written message can go by SMS: its subject leads
            found.add(Channel.SMS)
        return frozenset(found)

    # -- rendering -------------------------------------------------------------------

    def render(self, content: MessageContent) -> Rendered:
        """The body for `content.channel`, in `content.language`, in the step's voice."""
        if content.language not in LANGUAGES:
            raise TemplateError([f"language {content.language!r} is not one of {LANGUAGES}"])
        where = f"{content.template}/{content.channel}/{content.language}"
        try:
            return self._render(content)
        except TemplateError:
            raise
        except jinja2.TemplateNotFound as exc:
            raise TemplateError([f"{where}: no template {exc.name!r}"]) from None
        except (jinja2.TemplateError, KeyError, ValueError, TypeError) as exc:
            # KeyError/ValueError/TypeError: a translation whose placeholders do not match.
            raise TemplateError([f"{where}: {type(exc).__name__}: {exc}"]) from exc

    def _module(self, name: str, variables: Mapping[str, Any]) -> Any:
        return self.env.get_template(name).make_module(dict(variables))

    def _render(self, content: MessageContent) -> Rendered:
        channel = Channel(content.channel)
        variables = _variables(content)
        voice = self._module(_message_name(content.template), variables)
        needs = ("subject",) if channel is Channel.SMS and not hasattr(voice, "sms") else ()
        missing = [n for n in needs or _NEEDS[channel] if not hasattr(voice, n)]
        if missing:
            raise TemplateError(
                [f"{content.template}/{channel}: the template does not set {', '.join(missing)}"]
            )
        # Shared sentences as plain strings: the layouts print them, the HTML one escaped.
        parts = self._module("parts.j2", variables)
        shared = {k: str(v).strip() for k, v in vars(parts).items() if isinstance(v, str)}

        def kv(label: str, value: str) -> str:
            return str(parts.kv(label, value)).strip()

        invoice_rows = []
        for row in variables["invoices"]:
            label = str(parts.invoice_label(row["ref"], row["due_on"])).strip()
            invoice_rows.append(
                {"label": label, "amount": row["amount"], "line": kv(label, row["amount"])}
            )
        fee_rows = []
        for row in variables["fees"]:
            label = str(parts.fee_label(row["kind"])).strip()
            fee_rows.append(
                {
                    "label": label,
                    "amount": row["amount"],
                    "basis": row["legal_basis"],
                    "short": kv(label, row["amount"]),
                    "line": kv(label, f"{row['amount']} ({row['legal_basis']})"),
                }
            )
        scope = {
            **variables,
            "parts": shared,
            "kv": kv,
            "invoice_rows": invoice_rows,
            "fee_rows": fee_rows,
        }
        # A service message (`{% set service = true %}`: one the debtor asked for, such as
        # the notice of a chat answer) has its own layouts, without the collection facts.
        layouts = "layouts/service/" if getattr(voice, "service", False) else "layouts/"
        if channel is Channel.SMS:
            lead = " ".join(str(getattr(voice, "sms", None) or voice.subject).split())
            body = str(self._module(f"{layouts}sms.j2", {**scope, "lead": lead}))
            return SmsBody(gsm_friendly("\n".join(_lines(body))))
        if channel is Channel.PHONE:
            lines = _lines(str(voice.lines))
            body = str(self._module(f"{layouts}phone.j2", {**scope, "lines": lines}))
            return PhoneScript(title=" ".join(str(voice.title).split()), lines=_lines(body))
        subject = " ".join(str(voice.subject).split())
        paragraphs = _lines(str(voice.body))
        closing = " ".join(str(getattr(voice, "closing", "")).split())
        scope |= {
            "subject": subject,
            "body": paragraphs,
            "closing": closing or shared["closing"],
        }
        if channel is Channel.LETTER:
            layout = self._module(f"{layouts}letter.j2", scope)
            return LetterBody(
                subject=subject,
                salutation=shared["letter_salutation"],
                paragraphs=_paragraphs(str(layout)),
                closing=f"{closing or shared['letter_closing']}\n{variables['creditor_name']}",
            )
        cta = " ".join(str(getattr(voice, "cta", "")).split()) or shared["cta"]
        scope |= {"cta": cta, "cta_link": str(getattr(voice, "cta_link", "")) or content.pay_link}
        plain = str(self._module(f"{layouts}email.txt.j2", scope))
        html = self.env.get_template(f"{layouts}email.html.j2").render(scope)
        tidy = "\n".join(line.rstrip() for line in plain.split("\n"))
        text = _BLANK_RUNS.sub("\n\n", tidy).strip() + "\n"
        return EmailBody(subject=subject, text=text, html=html.strip() + "\n")

    # -- validation ------------------------------------------------------------------

    def messages(self) -> dict[str, list[str]]:
        """Every msgid the templates use, with where (template:line)."""
        found: dict[str, list[str]] = {}
        options = {"trimmed": "true", "newstyle_gettext": "true", "silent": "false"}
        for name in self.env.list_templates(filter_func=lambda n: n.endswith(".j2")):
            source, _, _ = self.loader.get_source(self.env, name)
            fileobj = io.BytesIO(source.encode("utf-8"))
            for lineno, message, _, _ in extract(_EXTRACTOR, fileobj, options=options):
                ids = message if isinstance(message, tuple) else (message,)
                for msgid in ids:
                    if msgid:
                        found.setdefault(msgid, []).append(f"{name}:{lineno}")
        return found

    def _translation_problems(self, used: Mapping[str, list[str]]) -> list[str]:
        problems: list[str] = []
        for language in LANGUAGES:
            if language == SOURCE_LANGUAGE:
                continue
            entries: dict[str, tuple[str, bool]] = {}
            for catalog in self.catalogs[language]:
                for message in catalog:
                    msgid = message.id
                    if not isinstance(msgid, str) or not msgid:
                        continue  # the header, or a plural (templates use none)
                    string = message.string if isinstance(message.string, str) else ""
                    entries[msgid] = (string, message.fuzzy)
                    unknown = set(_PLACEHOLDER.findall(string)) - set(_PLACEHOLDER.findall(msgid))
                    if unknown:
                        problems.append(
                            f"{language}: {msgid!r}: the translation uses "
                            f"{', '.join(sorted(unknown))}, which the original does not have"
                        )
            for msgid, (string, fuzzy) in sorted(entries.items()):
                if not string:
                    problems.append(f"{language}: {msgid!r} has no translation")
                elif fuzzy:
                    problems.append(f"{language}: {msgid!r} is marked fuzzy")
            for msgid, where in sorted(used.items()):
                if msgid not in entries:
                    problems.append(f"{language}: {msgid!r} ({where[0]}) is not in the catalog")
        return problems

    def validate(self, required: Iterable[tuple[str, Channel]] | None = None) -> list[str]:
        """Every problem found, empty when all is well.

        `required`: the (template key, channel) pairs that must render; by default those
        of the built-in journey library.
        """
        problems: list[str] = []
        try:
            used = self.messages()
        except jinja2.TemplateSyntaxError as exc:
            return [f"{exc.filename or exc.name}:{exc.lineno}: {exc.message}"]
        problems += self._translation_problems(used)
        wanted = set(builtin_requirements() if required is None else required)
        available = {key: self.channels_of(key) for key in self.template_keys()}
        for key, channel in sorted(wanted):
            if key not in available:
                problems.append(f"{key}/{channel}: no template {_message_name(key)}")
            elif channel not in available[key]:
                needs = ", ".join(_NEEDS[channel])
                problems.append(f"{key}/{channel}: {_message_name(key)} does not set {needs}")
        for key, channels in sorted(available.items()):
            if not channels:
                problems.append(f"{_message_name(key)}: sets nothing any channel can send")
            for channel in sorted(channels):
                # Every language with every optional fact; the bare content (no fee, no
                # chat link) once more in one language: what it leaves out does not
                # depend on the language.
                samples = [sample_content(key, channel, lang) for lang in LANGUAGES]
                samples.append(sample_content(key, channel, SOURCE_LANGUAGE, full=False))
                for sample in samples:
                    problems += self._render_problems(sample)
        return list(dict.fromkeys(problems))

    def _render_problems(self, content: MessageContent) -> list[str]:
        where = f"{content.template}/{content.channel}/{content.language}"
        try:
            rendered = self.render(content)
        except TemplateError as exc:
            return list(exc.problems)
        if not isinstance(rendered, SmsBody):
            return []
        problems = []
        outside = characters_forcing_ucs2(rendered.text)
        if outside:
            shown = " ".join(repr(c) for c in outside)
            problems.append(f"{where}: characters outside the GSM alphabet: {shown}")
        if segments(rendered.text) > MAX_SMS_SEGMENTS:
            problems.append(
                f"{where}: {segments(rendered.text)} SMS segments (at most {MAX_SMS_SEGMENTS})"
            )
        return problems

    @classmethod
    def load(cls, operator_dir: Path | None = None) -> Renderer:
        """A renderer that passed `validate`; `TemplateError` lists every problem."""
        renderer = cls(operator_dir)
        problems = renderer.validate()
        if problems:
            raise TemplateError(problems)
        return renderer


@cache
def get_renderer(operator_dir: Path | None = None) -> Renderer:
    """The validated renderer, built once per process (per operator directory)."""
    return Renderer.load(operator_dir)


# --- what the journeys need -------------------------------------------------------------


@cache
def builtin_requirements(library_dir: Path = _BUILTIN_JOURNEYS) -> frozenset[tuple[str, Channel]]:
    """(template key, channel) of every send step, and (script, phone) of every task, of
    the journey files in `library_dir` (the built-in library by default).

    Read straight from the YAML data, so the channels package needs no journey code.
    """
    pairs: set[tuple[str, Channel]] = set()
    for path in sorted(library_dir.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for node in data.get("nodes", ()):
            if node.get("type") == "send":
                for name in (*node.get("channels", ()), *node.get("fallback", ())):
                    pairs.add((node["template"], Channel(name)))
            elif node.get("type") == "task" and node.get("script"):
                pairs.add((node["script"], Channel.PHONE))
    return frozenset(pairs)


SAMPLE_CREDITOR: Final = CreditorProfile(  # previews and benchmarks
    name="Exemple & Fils SA",
    iban="BE71096123456769",
    bic="GKCCBEBB",
    address=Address("Exemple & Fils SA", "Rue de la Loi 16", "1000", "Bruxelles", "BE"),
    help_email="aide@exemple.example",
    help_phone="+3225550100",
    company_number="0123.456.749",
)


def sample_content(
    template: str,
    channel: Channel | str,
    language: str = "fr",
    *,
    full: bool = True,
    **changes: Any,
) -> MessageContent:
    """A realistic message for previews and checks. `full`: every optional fact given
    (fees of each kind, chat link, BIC); else the bare minimum (no fee, no chat link)."""
    fees: tuple[FeeLine, ...] = ()
    if full:
        fees = (
            FeeLine("reminder_fee", 750, "Code de droit économique, art. XIX.4, § 2"),
            FeeLine("flat_indemnity", 2000, "Code de droit économique, art. XIX.4"),
        )
        # The journeys book no interest today, and French "intérêts" cannot be written
        # in GSM-7: an SMS carrying interest goes as UCS-2 (more segments), by design.
        if Channel(channel) is not Channel.SMS:
            fees += (FeeLine("late_interest", 112, "Loi du 2 août 2002, art. 5"),)
    creditor = (
        SAMPLE_CREDITOR
        if full
        else dataclasses.replace(SAMPLE_CREDITOR, bic=None, company_number=None)
    )
    content = MessageContent(
        attempt_id="0" * 32,
        case_ref="C-SAMPLE01",
        debtor_ref="SAMPLE01",
        channel=Channel(channel),
        template=template,
        language=language,
        persona=None,
        creditor=creditor,
        debtor_name="Dennis <Peeters> & Co" if full else "Dennis Peeters",
        email="dennis@example.be",
        mobile="+32470123456",
        address=Address("Dennis Peeters", "Kerkstraat 12 bus 3", "9000", "Gent", "BE"),
        invoices=(
            InvoiceLine("INV-2026-0042", dt.date(2026, 7, 1), dt.date(2026, 8, 1), 8450, 8450),
            *(
                (
                    InvoiceLine(
                        "INV-2026-0051", dt.date(2026, 8, 1), dt.date(2026, 8, 31), 120_000, 104_000
                    ),
                )
                if full
                else ()
            ),
        ),
        fees=fees,
        currency="EUR",
        pay_by=dt.date(2026, 8, 20),  # "août": a month name that would leave GSM-7
        structured_communication=StructuredCommunication.from_base(1234567890),
        pay_link="https://pay.example/p/sample",
        opt_out_link="https://pay.example/o/sample",
        chat_link="https://pay.example/c/sample" if full else None,
        reminder=not (template.startswith("pre_due") or template == "chat_invite"),
        sent_on=dt.date(2026, 8, 3),
    )
    return dataclasses.replace(content, **changes)
