"""Message templates: every journey step renders in French, Dutch and English, in its
persona's voice, and always carries the facts the debtor needs to act and the law asks for."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from babel.numbers import format_currency
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import escape

from parcours.channels.content import (
    Channel,
    EmailBody,
    FeeLine,
    LetterBody,
    MessageContent,
    PhoneScript,
    SmsBody,
)
from parcours.channels.gsm import encoding, gsm_friendly, segments
from parcours.channels.render import (
    Renderer,
    TemplateError,
    builtin_requirements,
    get_renderer,
    locale_for,
    sample_content,
)
from parcours.domain.structured_communication import StructuredCommunication
from tests.channels.conftest import make_content

LANGS = ("fr", "nl", "en")
LOCALE_DIR = Path(__file__).parents[2] / "src" / "parcours" / "channels" / "locale"
PAIRS = sorted(builtin_requirements())
SEND_PAIRS = [(k, c) for k, c in PAIRS if c is not Channel.PHONE]
SMS_KEYS = sorted({k for k, c in PAIRS if c is Channel.SMS})

# make_content(): 84,50 + 40,00 open + 7,50 reminder fee.
AMOUNT = {"fr": "132,00 €", "nl": "€ 132,00", "en": "132,00 €"}
FEE_LABEL = {"fr": "Frais de rappel", "nl": "Herinneringskosten", "en": "Reminder fee"}
FEE_AMOUNT = {"fr": "7,50 €", "nl": "€ 7,50", "en": "7,50 €"}
FREE = {"fr": "gratuit", "nl": "kosteloos", "en": "free of charge"}
COMM = "+++123/4567/89002+++"
HELP_PHONE = "+32 2 555 01 00"
# English a French or Dutch reader must never see: any of these means a missing translation.
SENTINELS = (
    "Amount",
    "Structured communication",
    "free of charge",
    "Questions",
    "regards",
    "Hello",
    "Dear",
    "unpaid",
    "invoice",
    "Pay by",
    "Pay online",
    "Your file",
    "Formal notice",
    "reminder",
    "Total to pay",
)


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return get_renderer()


def is_reminder(key: str) -> bool:
    """As the journey library flags its send steps (pre-due and chat invites are not)."""
    return not (key.startswith("pre_due") or key == "chat_invite")


def content_for(key: str, channel: Channel, language: str, **changes: object) -> MessageContent:
    return make_content(
        template=key, channel=channel, language=language, reminder=is_reminder(key), **changes
    )


def plain(text: str) -> str:
    """Babel's no-break spaces as plain spaces, to compare with expected strings."""
    return text.replace("\u00a0", " ").replace("\u202f", " ")


def words_of(rendered: object) -> str:
    """Everything a debtor reads in a rendered message, as one text."""
    if isinstance(rendered, EmailBody):
        return plain(f"{rendered.subject}\n{rendered.text}")
    if isinstance(rendered, SmsBody):
        return plain(rendered.text)
    if isinstance(rendered, LetterBody):
        body = "\n".join(rendered.paragraphs)
        return plain(f"{rendered.subject}\n{rendered.salutation}\n{body}\n{rendered.closing}")
    assert isinstance(rendered, PhoneScript)
    return plain("\n".join((rendered.title, *rendered.lines)))


# --- the built-in library -------------------------------------------------------------


def test_builtin_templates_and_catalogs_validate_clean(renderer: Renderer) -> None:
    """get_renderer() validated at load; nothing is missing, untranslated or un-renderable."""
    assert renderer.validate() == []
    assert get_renderer() is renderer  # built once
    for key, channel in PAIRS:
        assert channel in renderer.channels_of(key), (key, channel)


def test_library_requirements_cover_the_known_keys() -> None:
    keys = {k for k, _ in PAIRS}
    assert {"pre_due", "reminder_1_phone", "formal_notice", "chat_invite"} <= keys
    assert ("formal_notice_short", Channel.LETTER) in PAIRS  # fallback channels count too
    assert ("supportive_call", Channel.PHONE) in PAIRS  # task scripts are phone scripts


def test_every_catalog_entry_is_used_by_a_template(renderer: Renderer) -> None:
    """No stale translations: the catalogs hold exactly the templates' messages."""
    used = set(renderer.messages())
    for language in LANGS:
        path = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
        with path.open("rb") as handle:
            ids = {m.id for m in read_po(handle) if m.id}
        assert ids == used, language


@pytest.mark.parametrize("language", LANGS)
@pytest.mark.parametrize(("key", "channel"), SEND_PAIRS)
def test_every_message_carries_the_facts(
    renderer: Renderer, key: str, channel: Channel, language: str
) -> None:
    """Amount, pay-by date, structured communication, pay link, help, opt-out, each booked
    fee on its own line, and "free" on a first reminder only; no English left behind."""
    content = content_for(key, channel, language)
    words = words_of(renderer.render(content))
    assert AMOUNT[language] in words
    assert COMM in words
    assert content.pay_link in words
    assert HELP_PHONE in words
    assert content.opt_out_link in words
    if channel is Channel.SMS:
        assert "20/12/2026" in words
    else:
        assert content.creditor.help_email in words
        assert {"fr": "20 décembre 2026", "nl": "20 december 2026", "en": "20 December 2026"}[
            language
        ] in words

    lines = [line.removeprefix("- ") for line in words.split("\n")]
    fee = [line for line in lines if line.startswith(FEE_LABEL[language])]
    assert len(fee) == 1 and FEE_AMOUNT[language] in fee[0], "the booked fee, on its own line"
    if channel is not Channel.SMS:
        assert "art. XIX.4" in fee[0], "with its legal basis"

    free = [line for line in lines if FREE[language] in line]
    if key.startswith("reminder_1"):
        assert free, "Book XIX: the first reminder states it is free of charge"
    elif key.startswith("reminder"):
        assert [s for s in free if "rappel" in s or "herinnering" in s or "reminder" in s] == []

    if language != "en":
        leftovers = [s for s in SENTINELS if s in words]
        assert leftovers == [], leftovers


@pytest.mark.parametrize("language", LANGS)
@pytest.mark.parametrize("key", ["formal_notice", "formal_notice_short", "formal_notice_phone"])
def test_formal_notices_list_every_fee_with_the_new_total(
    renderer: Renderer, key: str, language: str
) -> None:
    fees = (
        FeeLine("reminder_fee", 750, "Code de droit économique, art. XIX.4, § 2"),
        FeeLine("flat_indemnity", 2000, "Code de droit économique, art. XIX.4"),
    )
    labels = {
        "fr": ("Frais de rappel", "Indemnité forfaitaire"),
        "nl": ("Herinneringskosten", "Forfaitaire schadevergoeding"),
        "en": ("Reminder fee", "Flat-rate indemnity"),
    }[language]
    total = {"fr": "152,00 €", "nl": "€ 152,00", "en": "152,00 €"}[language]
    for channel in sorted({c for k, c in PAIRS if k == key}):
        words = words_of(renderer.render(content_for(key, channel, language, fees=fees)))
        lines = [line.removeprefix("- ") for line in words.split("\n")]
        for label in labels:
            assert sum(line.startswith(label) for line in lines) == 1, (channel, label)
        assert total in words


@pytest.mark.parametrize("language", LANGS)
@pytest.mark.parametrize(("key", "channel"), [p for p in SEND_PAIRS if p[0].startswith("pre_due")])
def test_pre_due_messages_do_not_sound_late(
    renderer: Renderer, key: str, channel: Channel, language: str
) -> None:
    """Nothing is late yet: no reminder, no 'unpaid', no fee threat, no 'free reminder'."""
    content = content_for(key, channel, language, fees=())
    words = words_of(renderer.render(content)).lower()
    late = {
        "fr": ("rappel", "impayé", "retard", "mise en demeure", "gratuit"),
        "nl": ("herinnering", "niet betaald", "onbetaald", "ingebrekestelling", "kosteloos"),
        "en": ("reminder", "unpaid", "overdue", "formal notice", "free of charge"),
    }[language]
    assert [w for w in late if w in words] == []


@pytest.mark.parametrize("language", LANGS)
@pytest.mark.parametrize("channel", [Channel.EMAIL, Channel.SMS])
def test_chat_invite_carries_the_chat_link_or_falls_back(
    renderer: Renderer, channel: Channel, language: str
) -> None:
    with_chat = content_for("chat_invite", channel, language, chat_link="https://chat.example/x")
    assert "https://chat.example/x" in words_of(renderer.render(with_chat))
    without = content_for("chat_invite", channel, language, chat_link=None)
    rendered = renderer.render(without)
    assert "https://chat.example/x" not in words_of(rendered)
    # Without a chat link the invitation points at the pay page, where the chat lives.
    if isinstance(rendered, EmailBody):
        button = re.search(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', rendered.html)
        assert button is not None and button.group(1) == without.pay_link
        chat = renderer.render(with_chat)
        assert isinstance(chat, EmailBody)
        assert chat.html.count('href="https://chat.example/x"') == 1  # the button
    else:
        assert words_of(rendered).count(without.pay_link) == 2  # the invitation and "pay"


# --- voices -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "language", "phrase"),
    [
        ("reminder_1_plan", "fr", "plan de paiement"),
        ("reminder_1_plan", "nl", "afbetalingsplan"),
        ("reminder_1_plan", "fr", "CPAS"),
        ("reminder_1_plan", "nl", "OCMW"),
        ("reminder_1_friendly", "fr", "domiciliation"),
        ("reminder_1_friendly", "nl", "domiciliëring"),
        ("reminder_1_phone", "fr", "en un clic"),
        ("reminder_1_phone", "nl", "één klik"),
        ("reminder_1_firm", "fr", "indemnité forfaitaire"),
        ("reminder_1_firm", "nl", "forfaitaire schadevergoeding"),
        ("formal_notice", "fr", "mettons formellement en demeure"),
        ("formal_notice", "nl", "in gebreke"),
        ("formal_notice", "fr", "Veuillez agréer"),
        ("reminder_1", "nl", "Geachte Dennis Peeters"),
    ],
)
def test_persona_voice_in_belgian_french_and_dutch(
    renderer: Renderer, key: str, language: str, phrase: str
) -> None:
    channel = next(c for k, c in SEND_PAIRS if k == key)
    assert phrase in words_of(renderer.render(content_for(key, channel, language)))


def test_supportive_voice_does_not_threaten_and_firm_voice_names_the_consequence(
    renderer: Renderer,
) -> None:
    for language, threat in (("fr", "indemnité"), ("nl", "schadevergoeding"), ("en", "indemnity")):
        soft = words_of(renderer.render(content_for("reminder_1_plan", Channel.EMAIL, language)))
        firm = words_of(renderer.render(content_for("reminder_1_firm", Channel.LETTER, language)))
        assert threat not in soft
        assert threat in firm


def test_letter_has_a_formal_salutation_and_a_signed_closing(renderer: Renderer) -> None:
    letter = renderer.render(content_for("reminder_1", Channel.LETTER, "fr"))
    assert isinstance(letter, LetterBody)
    assert letter.salutation == "Madame, Monsieur,"
    assert letter.closing.endswith("\nDemo Energy SA")
    assert all(p.strip() == p and p for p in letter.paragraphs)


@pytest.mark.parametrize("language", LANGS)
@pytest.mark.parametrize("key", sorted({k for k, c in PAIRS if c is Channel.PHONE}))
def test_phone_scripts_check_identity_first_and_carry_the_facts(
    renderer: Renderer, key: str, language: str
) -> None:
    content = content_for(key, Channel.PHONE, language)
    script = renderer.render(content)
    assert isinstance(script, PhoneScript)
    assert script.title and len(script.lines) >= 5
    assert content.debtor_name in script.lines[0]  # right-party check before anything
    words = words_of(script)
    assert AMOUNT[language] in words and COMM in words and content.pay_link in words
    if language != "en":
        assert "Introduce" not in words and "customer" not in words


# --- e-mail HTML ----------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGS)
def test_html_is_accessible_and_escapes_what_it_shows(renderer: Renderer, language: str) -> None:
    hostile = "<script>alert(1)</script> & Co"
    creditor = dataclasses.replace(make_content().creditor, name='Fast & "Fair" <SA>')
    content = content_for(
        "reminder_1_phone", Channel.EMAIL, language, debtor_name=hostile, creditor=creditor
    )
    email = renderer.render(content)
    assert isinstance(email, EmailBody)
    assert f'<html lang="{language}">' in email.html
    assert "<script>" not in email.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in email.html
    assert "Fast &amp; &#34;Fair&#34; &lt;SA&gt;" in email.html
    assert "<SA>" not in email.html and '"Fair"' not in email.html  # escaped everywhere
    assert f'href="{content.pay_link}"' in email.html  # the pay button
    assert f'href="{content.opt_out_link}"' in email.html
    assert f'href="mailto:{content.creditor.help_email}"' in email.html
    assert "<img" not in email.html  # real text, no images
    assert hostile in email.text  # the plain-text part is not HTML: no entities
    assert COMM in email.html and plain(AMOUNT[language]) in plain(email.html)


# --- SMS ----------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGS)
@pytest.mark.parametrize("key", SMS_KEYS)
def test_sms_is_gsm7_and_short(renderer: Renderer, key: str, language: str) -> None:
    text = renderer.render(content_for(key, Channel.SMS, language)).text  # type: ignore[union-attr]
    assert encoding(text) == "GSM-7", text
    assert segments(text) <= 3, text
    bare = content_for(key, Channel.SMS, language, fees=(), chat_link=None)
    assert segments(renderer.render(bare).text) <= 2  # type: ignore[union-attr]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    key=st.sampled_from(SMS_KEYS),
    language=st.sampled_from(LANGS),
    open_minor=st.integers(min_value=1, max_value=99_999_999),
    fee_minor=st.integers(min_value=0, max_value=200_000),
    base=st.integers(min_value=0, max_value=10**10 - 1),
    pay_by=st.dates(min_value=dt.date(2026, 1, 1), max_value=dt.date(2030, 12, 31)),
)
def test_any_sms_stays_gsm7_within_three_segments_and_states_the_facts(
    renderer: Renderer,
    key: str,
    language: str,
    open_minor: int,
    fee_minor: int,
    base: int,
    pay_by: dt.date,
) -> None:
    base_content = make_content()
    invoice = dataclasses.replace(base_content.invoices[0], open_minor=open_minor)
    fees = (FeeLine("flat_indemnity", fee_minor, "art. XIX.4"),) if fee_minor else ()
    comm = StructuredCommunication.from_base(base)
    content = content_for(
        key,
        Channel.SMS,
        language,
        invoices=(invoice,),
        fees=fees,
        structured_communication=comm,
        pay_by=pay_by,
    )
    text = renderer.render(content).text  # type: ignore[union-attr]
    assert encoding(text) == "GSM-7"
    assert segments(text) <= 3
    assert comm.formatted in text and content.pay_link in text
    assert pay_by.strftime("%d/%m/%Y") in text
    total = format_currency(Decimal(content.total_minor) / 100, "EUR", locale=locale_for(language))
    assert gsm_friendly(total) in text


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    pair=st.sampled_from([p for p in SEND_PAIRS if p[1] is not Channel.SMS]),
    language=st.sampled_from(LANGS),
    name=st.text(
        st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=40
    )
    .map(lambda t: " ".join(t.split()))
    .filter(bool),
    open_minor=st.integers(min_value=1, max_value=10**9),
)
def test_any_name_and_amount_render_without_error_and_name_stays_escaped(
    renderer: Renderer, pair: tuple[str, Channel], language: str, name: str, open_minor: int
) -> None:
    key, channel = pair
    invoice = dataclasses.replace(make_content().invoices[0], open_minor=open_minor)
    content = content_for(key, channel, language, debtor_name=name, invoices=(invoice,))
    rendered = renderer.render(content)
    if isinstance(rendered, EmailBody):
        # The name lands only escaped: the page is the one made with a plain marker, with
        # the escaped name where the marker was.
        marked = renderer.render(dataclasses.replace(content, debtor_name="Zq9Marker"))
        assert isinstance(marked, EmailBody)
        assert rendered.html == marked.html.replace("Zq9Marker", str(escape(name)))
        assert name in rendered.text
    elif isinstance(rendered, LetterBody) and language != "fr":
        assert name in rendered.salutation


def test_a_name_cannot_add_lines_to_a_message(renderer: Renderer) -> None:
    """Line breaks and control characters in a name are flattened: no forged lines."""
    name = "Dennis\nPay to BE00 0000 0000 0000\x1e\r\x00 Peeters"
    letter = renderer.render(content_for("reminder_1", Channel.LETTER, "en", debtor_name=name))
    assert isinstance(letter, LetterBody)
    assert letter.salutation == "Dear Dennis Pay to BE00 0000 0000 0000 Peeters,"
    email = renderer.render(content_for("reminder_1_phone", Channel.EMAIL, "nl", debtor_name=name))
    assert isinstance(email, EmailBody)
    assert email.text.startswith("Beste Dennis Pay to BE00 0000 0000 0000 Peeters,\n")


# --- determinism and languages --------------------------------------------------------


def test_rendering_is_deterministic(renderer: Renderer) -> None:
    other = Renderer()
    for key, channel in PAIRS:
        content = content_for(key, channel, "nl")
        assert renderer.render(content) == renderer.render(content) == other.render(content)


def test_channel_given_as_plain_text_renders_the_same(renderer: Renderer) -> None:
    as_enum = content_for("pre_due", Channel.SMS, "fr")
    as_text = dataclasses.replace(as_enum, channel="sms")
    assert renderer.render(as_text) == renderer.render(as_enum)


def test_locales_are_belgian() -> None:
    assert [locale_for(lang) for lang in LANGS] == ["fr_BE", "nl_BE", "en_BE"]
    with pytest.raises(TemplateError):
        locale_for("de")


def test_unknown_language_or_template_is_a_template_error(renderer: Renderer) -> None:
    with pytest.raises(TemplateError, match="language"):
        renderer.render(make_content(language="de"))
    with pytest.raises(TemplateError, match="no_such_step"):
        renderer.render(make_content(template="no_such_step"))
    with pytest.raises(TemplateError, match="does not set title, lines"):
        renderer.render(make_content(template="reminder_1", channel=Channel.PHONE))


def test_a_message_without_its_own_sms_text_leads_its_sms_with_its_subject(
    renderer: Renderer,
) -> None:
    """A journey may send any written step by SMS (a fallback, an operator's journey)."""
    for language in LANGS:
        email = renderer.render(make_content(template="reminder_1", language=language))
        sms = renderer.render(
            make_content(template="reminder_1", channel=Channel.SMS, language=language)
        )
        assert isinstance(email, EmailBody) and isinstance(sms, SmsBody)
        assert email.subject.split(":")[0] in sms.text.splitlines()[0]
        assert "+++123/4567/89002+++" in sms.text and segments(sms.text) <= 3


# --- validation of operator templates and catalogs ------------------------------------


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")


def po(entries: dict[str, str], language: str) -> str:
    head = f'msgid ""\nmsgstr ""\n"Language: {language}\\n"\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
    body = "".join(f'msgid "{k}"\nmsgstr "{v}"\n\n' for k, v in entries.items())
    return head + body


def test_operator_template_and_catalog_override_the_builtin(tmp_path: Path) -> None:
    write(
        tmp_path / "messages" / "pre_due.j2",
        """
        {% set subject %}{% trans %}Your bill is nearly due{% endtrans %}{% endset %}
        {% set body %}{% trans %}Operator wording.{% endtrans %}{% endset %}
        {% set sms %}{% trans %}Operator wording.{% endtrans %}{% endset %}
        """,
    )
    for language, subject, wording in (
        ("fr", "Votre facture arrive à échéance", "Texte de l'opérateur."),
        ("nl", "Uw factuur vervalt bijna", "Tekst van de operator."),
    ):
        write(
            tmp_path / "locale" / language / "LC_MESSAGES" / "messages.po",
            po({"Your bill is nearly due": subject, "Operator wording.": wording}, language),
        )
    renderer = Renderer(tmp_path)
    assert renderer.validate() == []
    email = renderer.render(content_for("pre_due", Channel.EMAIL, "nl"))
    assert isinstance(email, EmailBody)
    assert email.subject == "Uw factuur vervalt bijna"
    assert "Tekst van de operator." in email.text
    assert COMM in email.text  # the layout's facts are still there
    builtin = get_renderer().render(content_for("pre_due", Channel.EMAIL, "nl"))
    assert builtin.subject != email.subject  # type: ignore[union-attr]


def test_validate_reports_a_missing_translation(tmp_path: Path) -> None:
    write(
        tmp_path / "messages" / "reminder_1.j2",
        """
        {% set subject %}{% trans %}A sentence nobody translated{% endtrans %}{% endset %}
        {% set body %}{% trans %}Pay {{ amount }}.{% endtrans %}{% endset %}
        """,
    )
    write(
        tmp_path / "locale" / "nl" / "LC_MESSAGES" / "messages.po",
        po({"Pay %(amount)s.": "", "A sentence nobody translated": "Vertaald"}, "nl"),
    )
    problems = Renderer(tmp_path).validate()
    assert (
        "fr: 'A sentence nobody translated' (messages/reminder_1.j2:1) is not in the catalog"
        in problems
    )
    assert "fr: 'Pay %(amount)s.' (messages/reminder_1.j2:2) is not in the catalog" in problems
    assert "nl: 'Pay %(amount)s.' has no translation" in problems
    assert not any(p.startswith("nl: 'A sentence nobody") for p in problems)


def test_validate_reports_fuzzy_and_wrong_placeholders(tmp_path: Path) -> None:
    write(
        tmp_path / "locale" / "fr" / "LC_MESSAGES" / "messages.po",
        '#, fuzzy\nmsgid "Pay now"\nmsgstr "Payez"\n\n'
        'msgid "Pay %(amount)s"\nmsgstr "Payer %(montant)s"\n',
    )
    renderer = Renderer(tmp_path)
    problems = renderer.validate()
    assert "fr: 'Pay now' is marked fuzzy" in problems
    assert any("'Pay %(amount)s': the translation uses montant" in p for p in problems)
    assert any(p.startswith("pre_due/email/fr:") and "KeyError" in p for p in problems)
    with pytest.raises(TemplateError, match="montant"):
        renderer.render(content_for("pre_due", Channel.EMAIL, "fr"))


def test_validate_reports_a_variable_the_template_does_not_get(tmp_path: Path) -> None:
    write(
        tmp_path / "messages" / "reminder_2.j2",
        """
        {% set subject %}{{ debtor_nickname }}{% endset %}
        {% set body %}{{ amount }}{% endset %}
        """,
    )
    renderer = Renderer(tmp_path)
    problems = renderer.validate()
    assert any(
        p.startswith("reminder_2/letter/fr:") and "'debtor_nickname' is undefined" in p
        for p in problems
    )
    with pytest.raises(TemplateError, match="debtor_nickname"):
        renderer.render(content_for("reminder_2", Channel.LETTER, "en"))
    with pytest.raises(TemplateError) as raised:
        Renderer.load(tmp_path)
    assert list(raised.value.problems) == problems  # all of them, at once


def test_validate_reports_a_missing_template_or_channel(tmp_path: Path) -> None:
    write(
        tmp_path / "messages" / "pre_due.j2",  # neither `sms` nor a subject to lead one
        """
        {% set body %}{{ amount }}{% endset %}
        """,
    )
    renderer = Renderer(tmp_path)
    problems = renderer.validate()
    assert "pre_due/sms: messages/pre_due.j2 does not set sms" in problems
    extra = renderer.validate(required=[("reminder_9", Channel.EMAIL), *builtin_requirements()])
    assert "reminder_9/email: no template messages/reminder_9.j2" in extra


def test_sample_content_serves_previews(renderer: Renderer) -> None:
    """What the `messages preview` command renders: every key and channel, any language."""
    for key in renderer.template_keys():
        for channel in renderer.channels_of(key):
            for full in (True, False):
                assert renderer.render(sample_content(key, channel, "fr", full=full))
