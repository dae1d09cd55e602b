"""Each creditor's channel set-up: the profile its messages show, and who carries each
channel — read from a YAML file (`PARCOURS_CHANNELS_FILE`), validated with pydantic.

    creditors:
      Demo Energy:
        profile: {name: Demo Energy SA, iban: BE71096123456769, ...}
        providers:
          email: {provider: smtp, host: smtp.example.be, port: 587, security: starttls}
          sms: {provider: sms-http, preset: twilio, ...}

A channel without a provider goes to the file outbox. Providers are plugins: entry points
in the `parcours.providers` group name a class with a pydantic `Config`; the settings
under a channel (everything but `provider` and `rate_per_second`) are that `Config`.
Errors name the file, the creditor and the key.
"""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from parcours.channels.base import Provider
from parcours.channels.content import Address, Channel, CreditorProfile
from parcours.domain.arrangements import ArrangementRules, PlanLimits
from parcours.payments.epc import iban_problem

__all__ = [
    "ChannelsConfig",
    "ChannelsError",
    "CreditorSetup",
    "ProviderSetting",
    "build_providers",
    "load_channels",
    "registry",
    "write_example",
]

ENTRY_POINT_GROUP = "parcours.providers"


class ChannelsError(ValueError):
    """The channels file (or a provider's settings in it) is not usable; says where."""


class ProfileModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=70)  # the EPC QR's beneficiary name limit
    iban: str
    bic: str | None = None
    street: str
    postcode: str
    city: str
    country: str = Field(default="BE", pattern=r"^[A-Z]{2}$")
    help_email: str
    help_phone: str = Field(pattern=r"^\+[1-9]\d{6,14}$")
    sms_sender: str = "parcours"
    email_from: str
    company_number: str | None = None

    @field_validator("iban")
    @classmethod
    def _iban(cls, value: str) -> str:
        compact = value.replace(" ", "").upper()
        problem = iban_problem(compact)
        if problem:
            raise ValueError(problem)
        return compact

    def profile(self) -> CreditorProfile:
        return CreditorProfile(
            name=self.name,
            iban=self.iban,
            bic=self.bic,
            address=Address(self.name, self.street, self.postcode, self.city, self.country),
            help_email=self.help_email,
            help_phone=self.help_phone,
            sms_sender=self.sms_sender,
            email_from=self.email_from,
            company_number=self.company_number,
        )


class ProviderSetting(BaseModel):
    """`provider` names the plugin; the other keys are its own configuration."""

    model_config = ConfigDict(extra="allow", frozen=True)

    provider: str
    rate_per_second: float | None = Field(default=None, gt=0)

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class PlanLimitsModel(BaseModel):
    """The creditor's limits on payment plans (what a debtor may choose alone)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_months: int = Field(default=12, ge=1, le=60)
    min_instalment: Decimal = Field(default=Decimal("25.00"), gt=0, decimal_places=2)
    max_instalments: int = Field(default=12, ge=1, le=60)
    first_within_days: int = Field(default=30, ge=0, le=90)
    grace_days: int = Field(default=5, ge=0, le=30)
    missed_to_break: int = Field(default=2, ge=1, le=12)
    break_after_days: int = Field(default=30, ge=1, le=180)


class LimitsModel(BaseModel):
    """Promises and plans: grace, horizon and the plan limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    promise_grace_days: int = Field(default=3, ge=0, le=30)
    promise_max_days: int = Field(default=30, ge=1, le=365)
    promise_kept_share: float = Field(default=1.0, gt=0, le=1)
    plan: PlanLimitsModel = Field(default_factory=PlanLimitsModel)

    def rules(self) -> ArrangementRules:
        plan = self.plan
        return ArrangementRules(
            promise_grace_days=self.promise_grace_days,
            promise_max_days=self.promise_max_days,
            promise_kept_share=self.promise_kept_share,
            plan=PlanLimits(
                max_months=plan.max_months,
                min_instalment_minor=int(plan.min_instalment * 100),
                max_instalments=plan.max_instalments,
                first_within_days=plan.first_within_days,
                grace_days=plan.grace_days,
                missed_to_break=plan.missed_to_break,
                break_after_days=plan.break_after_days,
            ),
        )


class PspSetting(BaseModel):
    """The creditor's payment service provider for the debtor page's online payment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["mollie", "stripe"]
    api_key: SecretStr
    webhook_secret: SecretStr | None = None
    base_url: str | None = None


class PortalSetting(BaseModel):
    """The debtor page: which light second factor it asks before showing anything."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The debtor's postcode or birth year; a debtor without it on file is asked the other.
    check: Literal["postcode", "birth_year"] = "postcode"


class CreditorSetup(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    profile: ProfileModel
    providers: dict[Channel, ProviderSetting] = Field(default_factory=dict)
    limits: LimitsModel = Field(default_factory=LimitsModel)
    psp: PspSetting | None = None
    portal: PortalSetting = Field(default_factory=PortalSetting)


class ChannelsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    creditors: dict[str, CreditorSetup] = Field(default_factory=dict)
    default: CreditorSetup | None = None  # for creditors without their own entry

    def for_creditor(self, name: str) -> CreditorSetup:
        setup = self.creditors.get(name, self.default)
        if setup is None:
            known = ", ".join(sorted(self.creditors)) or "none"
            raise ChannelsError(
                f"no channel set-up for creditor {name!r} (configured: {known}); add it "
                "under `creditors:` in the channels file (`parcours init` writes an example)"
            )
        return setup


def load_channels(path: Path) -> ChannelsConfig:
    """The channels file, validated; a missing file is an empty set-up."""
    if not path.exists():
        return ChannelsConfig()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ChannelsError(f"{path}: not valid YAML: {error}") from error
    try:
        config = ChannelsConfig.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise ChannelsError(f"{path}: {problems}") from error
    setups = [(f"creditors.{name}", setup) for name, setup in config.creditors.items()]
    if config.default is not None:
        setups.append(("default", config.default))
    for prefix, setup in setups:
        for channel, setting in setup.providers.items():
            _check_options(f"{path}: {prefix}.providers.{channel.value}", setting)
    return config


EXAMPLE: Final = """\
# Channel set-up per creditor (parcours reads this file at each dispatch).
# `default` serves every creditor without its own entry under `creditors:`.
# The profile below is an EXAMPLE (Febelfin's sample IBAN): replace it before sending.
default:
  profile:
    name: Demo Energy SA
    iban: BE71 0961 2345 6769
    bic: GKCCBEBB
    street: Rue de la Loi 16
    postcode: "1000"
    city: Bruxelles
    country: BE
    help_email: aide@demo-energy.example
    help_phone: "+3225550100"
    sms_sender: DemoEnergy
    email_from: factures@demo-energy.example
    company_number: "0123.456.749"
  # Without a provider, a channel writes to the outbox folder (PARCOURS_OUTBOX_DIR).
  providers: {}
  #   email: {provider: smtp, host: smtp.example.be, port: 587, security: starttls,
  #           username: parcours, password: "...", domain: demo-energy.example}
  #   sms: {provider: sms-http, preset: twilio, base_url: "https://api.twilio.com",
  #         account_sid: "AC...", token: "...", sender: DemoEnergy,
  #         status_callback_url: "https://pay.example.be/webhooks/sms/Demo%20Energy/status"}
  # Promises and payment plans a debtor may arrange alone (these are the defaults):
  limits:
    promise_grace_days: 3
    promise_max_days: 30
    plan: {max_months: 12, min_instalment: "25.00", max_instalments: 12}
  # Online payment from the debtor page (a hosted checkout), e.g.:
  # psp: {kind: mollie, api_key: "test_..."}  or  {kind: stripe, api_key: "sk_test_...",
  #       webhook_secret: "whsec_..."}; webhooks go to .../webhooks/psp/<creditor>.
  # Twilio's incoming messages (STOP, replies) go to .../webhooks/sms/<creditor>/inbound;
  # `parcours serve` answers both, checking Twilio's signature with the token above.
"""


def write_example(path: Path) -> bool:
    """Write the example set-up unless a file is there (True when written)."""
    if path.exists():
        return False
    path.write_text(EXAMPLE, encoding="utf-8")
    return True


@cache
def registry() -> dict[str, type[Provider]]:
    """Provider classes by name, from the `parcours.providers` entry points."""
    return {ep.name: ep.load() for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _provider_class(where: str, name: str) -> type[Provider]:
    found = registry().get(name)
    if found is None:
        known = ", ".join(sorted(registry()))
        raise ChannelsError(f"{where}.provider: unknown provider {name!r} (known: {known})")
    return found


def _check_options(where: str, setting: ProviderSetting) -> BaseModel:
    cls = _provider_class(where, setting.provider)
    try:
        return cls.Config.model_validate(setting.options())
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise ChannelsError(f"{where}: {problems}") from error


def build_providers(
    setup: CreditorSetup, outbox_dir: Path
) -> dict[Channel, tuple[Provider, float | None]]:
    """A provider (and its rate limit) for every channel; the file outbox by default."""
    from parcours.channels.file import FileConfig, FileOutbox

    built: dict[Channel, tuple[Provider, float | None]] = {}
    shared_file = FileOutbox(FileConfig(directory=outbox_dir))
    for channel in Channel:
        setting = setup.providers.get(channel)
        if setting is None:
            built[channel] = (shared_file, None)
            continue
        where = f"providers.{channel.value}"
        config = _check_options(where, setting)
        cls = _provider_class(where, setting.provider)
        built[channel] = (cls(config), setting.rate_per_second)  # type: ignore[call-arg]
    return built
