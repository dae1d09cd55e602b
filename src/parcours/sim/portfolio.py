"""Deterministic synthetic debt portfolios written as CSV files, for demos and benchmarks.

A portfolio looks like what a Belgian collection agency imports (debtors, invoices, payment
history); `ground_truth.csv` keeps the hidden persona each debtor was drawn from, so that a
persona classifier can be scored later. It is never part of an import.
"""

from __future__ import annotations

import csv
import json
import math
import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from itertools import accumulate
from pathlib import Path
from typing import Final, TextIO

import numpy as np
import numpy.typing as npt

from parcours.sim.survey_answers import survey_header, survey_rows

__all__ = [
    "DEBTOR_HEADER",
    "GENERATOR_VERSION",
    "GROUND_TRUTH_HEADER",
    "INVOICE_HEADER",
    "LATENT_PERSONAS",
    "PAYMENT_HEADER",
    "PortfolioSummary",
    "generate_portfolio",
]

GENERATOR_VERSION: Final = "parcours.sim.portfolio/1"

LATENT_PERSONAS: tuple[str, ...] = (
    "occasional",
    "struggling",
    "problem_payer",
    "engaged",
    "nonchalant",
)

DEBTOR_HEADER: Final = (
    "debtor_ref",
    "name",
    "email",
    "phone",
    "language",
    "country",
    "street",
    "postcode",
    "city",
    "birth_year",
    "timezone",
)
INVOICE_HEADER: Final = (
    "invoice_ref",
    "debtor_ref",
    "amount",
    "currency",
    "issue_date",
    "due_date",
    "description",
)
PAYMENT_HEADER: Final = ("payment_ref", "invoice_ref", "amount", "paid_at")
GROUND_TRUTH_HEADER: Final = ("debtor_ref", "latent_persona", "vulnerable")

# Debtors are drawn and written in chunks of this size so memory stays flat; it is part of
# the output's definition (changing it changes the files for a given seed).
_CHUNK: Final = 4096

_F64 = npt.NDArray[np.float64]
_I64 = npt.NDArray[np.int64]


def _persona_array(
    occasional: float, struggling: float, problem: float, engaged: float, nonchalant: float
) -> _F64:
    return np.array([occasional, struggling, problem, engaged, nonchalant], dtype=np.float64)


_OCCASIONAL, _STRUGGLING, _PROBLEM, _ENGAGED, _NONCHALANT = range(5)

# Shares of the GGN-style persona mix the brief asks for.
_PERSONA_P = _persona_array(0.20, 0.20, 0.10, 0.35, 0.15)

# Ages: Dennis (the seed persona) is 44, so occasional payers sit in a 30-55 band; the
# nonchalant are young-ish; the rest follow a broad adult population.
_AGE_MEAN = _persona_array(42.0, 42.0, 37.0, 50.0, 27.0)
_AGE_SD = _persona_array(7.0, 13.0, 11.0, 15.0, 6.0)
_AGE_LO = _persona_array(30.0, 18.0, 18.0, 18.0, 18.0)
_AGE_HI = _persona_array(55.0, 90.0, 90.0, 90.0, 45.0)

# Contact data: occasional payers live on their smartphone (always mobile and email);
# struggling and problem payers have gaps, some are reachable by post only.
_P_EMAIL = _persona_array(1.0, 0.55, 0.45, 0.90, 0.85)
_P_PHONE = _persona_array(1.0, 0.80, 0.60, 0.92, 0.97)
_P_LANDLINE = _persona_array(0.0, 0.15, 0.10, 0.10, 0.02)
_P_NO_BIRTH_YEAR = _persona_array(0.0, 0.04, 0.06, 0.03, 0.03)
_P_VULNERABLE = _persona_array(0.02, 0.13, 0.07, 0.03, 0.025)

# Most recent invoice: share already due in the future (so pre-due reminders apply) and a
# Beta(a, b) shape for how many of 1..120 days the others are overdue.
_P_OPEN_NOT_DUE = _persona_array(0.35, 0.15, 0.08, 0.30, 0.15)
_OVERDUE_A = _persona_array(1.0, 1.5, 2.0, 1.0, 1.2)
_OVERDUE_B = _persona_array(6.0, 2.5, 2.0, 6.0, 3.0)

# Payment behaviour on past invoices, in days relative to the due date.
_P_UNPAID = _persona_array(0.01, 0.15, 0.40, 0.005, 0.04)
_P_LATE = _persona_array(0.65, 1.0, 1.0, 0.15, 1.0)
_ON_TIME_LO = _persona_array(-5, 0, 0, -10, 0)
_ON_TIME_HI = _persona_array(0, 0, 0, 0, 0)
_LATE_LO = _persona_array(1, 15, 45, 1, 10)
_LATE_HI = _persona_array(12, 90, 180, 10, 40)
_P_INSTALMENTS = _persona_array(0.0, 0.70, 0.25, 0.0, 0.0)
_MAX_INSTALMENTS = _persona_array(1, 4, 3, 1, 1)
_P_PARTIAL = _persona_array(0.0, 0.10, 0.30, 0.0, 0.0)

_COUNTRIES: Final = ("BE", "NL", "FR", "LU", "DE")
_COUNTRY_P = np.array([0.85, 0.07, 0.04, 0.02, 0.02])
_BE, _NL, _FR, _LU, _DE = range(5)
_TIMEZONES: Final = (
    "Europe/Brussels",
    "Europe/Amsterdam",
    "Europe/Paris",
    "Europe/Luxembourg",
    "Europe/Berlin",
)
_P_NO_TIMEZONE: Final = 0.12

# (postcode, Dutch name, French name, landline area code, population in thousands).
# Real municipalities so that postcode, city, region (and thus language) and area code agree;
# Faker's Belgian city list has no postcodes and mixes both regions.
_BE_PLACES: Final[tuple[tuple[int, str, str, str, int], ...]] = (
    (1000, "Brussel", "Bruxelles", "2", 185),
    (1020, "Laken", "Laeken", "2", 60),
    (1030, "Schaarbeek", "Schaerbeek", "2", 133),
    (1040, "Etterbeek", "Etterbeek", "2", 48),
    (1050, "Elsene", "Ixelles", "2", 87),
    (1060, "Sint-Gillis", "Saint-Gilles", "2", 50),
    (1070, "Anderlecht", "Anderlecht", "2", 122),
    (1080, "Sint-Jans-Molenbeek", "Molenbeek-Saint-Jean", "2", 97),
    (1081, "Koekelberg", "Koekelberg", "2", 22),
    (1083, "Ganshoren", "Ganshoren", "2", 25),
    (1090, "Jette", "Jette", "2", 53),
    (1140, "Evere", "Evere", "2", 42),
    (1150, "Sint-Pieters-Woluwe", "Woluwe-Saint-Pierre", "2", 42),
    (1160, "Oudergem", "Auderghem", "2", 34),
    (1170, "Watermaal-Bosvoorde", "Watermael-Boitsfort", "2", 25),
    (1180, "Ukkel", "Uccle", "2", 84),
    (1190, "Vorst", "Forest", "2", 56),
    (1200, "Sint-Lambrechts-Woluwe", "Woluwe-Saint-Lambert", "2", 57),
    (1210, "Sint-Joost-ten-Node", "Saint-Josse-ten-Noode", "2", 27),
    (1300, "Wavre", "Wavre", "10", 35),
    (1348, "Louvain-la-Neuve", "Louvain-la-Neuve", "10", 32),
    (1400, "Nivelles", "Nivelles", "67", 28),
    (1410, "Waterloo", "Waterloo", "2", 30),
    (1420, "Braine-l'Alleud", "Braine-l'Alleud", "2", 40),
    (1500, "Halle", "Halle", "2", 40),
    (1700, "Dilbeek", "Dilbeek", "2", 43),
    (1730, "Asse", "Asse", "2", 33),
    (1800, "Vilvoorde", "Vilvoorde", "2", 45),
    (1930, "Zaventem", "Zaventem", "2", 34),
    (2000, "Antwerpen", "Antwerpen", "3", 300),
    (2018, "Antwerpen", "Antwerpen", "3", 60),
    (2100, "Deurne", "Deurne", "3", 80),
    (2140, "Borgerhout", "Borgerhout", "3", 45),
    (2170, "Merksem", "Merksem", "3", 45),
    (2200, "Herentals", "Herentals", "14", 29),
    (2300, "Turnhout", "Turnhout", "14", 45),
    (2400, "Mol", "Mol", "14", 37),
    (2440, "Geel", "Geel", "14", 41),
    (2500, "Lier", "Lier", "3", 36),
    (2800, "Mechelen", "Mechelen", "15", 87),
    (2850, "Boom", "Boom", "3", 19),
    (2900, "Schoten", "Schoten", "3", 35),
    (2930, "Brasschaat", "Brasschaat", "3", 39),
    (3000, "Leuven", "Leuven", "16", 102),
    (3200, "Aarschot", "Aarschot", "16", 30),
    (3300, "Tienen", "Tienen", "16", 35),
    (3500, "Hasselt", "Hasselt", "11", 80),
    (3580, "Beringen", "Beringen", "11", 47),
    (3600, "Genk", "Genk", "89", 67),
    (3630, "Maasmechelen", "Maasmechelen", "89", 38),
    (3700, "Tongeren", "Tongeren", "12", 31),
    (3800, "Sint-Truiden", "Sint-Truiden", "11", 41),
    (3920, "Lommel", "Lommel", "11", 35),
    (4000, "Liège", "Liège", "4", 197),
    (4040, "Herstal", "Herstal", "4", 40),
    (4100, "Seraing", "Seraing", "4", 64),
    (4300, "Waremme", "Waremme", "19", 15),
    (4500, "Huy", "Huy", "85", 21),
    (4700, "Eupen", "Eupen", "87", 20),
    (4800, "Verviers", "Verviers", "87", 55),
    (4900, "Spa", "Spa", "87", 10),
    (5000, "Namur", "Namur", "81", 111),
    (5300, "Andenne", "Andenne", "85", 27),
    (5500, "Dinant", "Dinant", "82", 14),
    (6000, "Charleroi", "Charleroi", "71", 201),
    (6200, "Châtelet", "Châtelet", "71", 36),
    (6600, "Bastogne", "Bastogne", "61", 16),
    (6700, "Arlon", "Arlon", "63", 30),
    (6800, "Libramont-Chevigny", "Libramont-Chevigny", "61", 11),
    (6900, "Marche-en-Famenne", "Marche-en-Famenne", "84", 17),
    (7000, "Mons", "Mons", "65", 95),
    (7100, "La Louvière", "La Louvière", "64", 81),
    (7500, "Tournai", "Tournai", "69", 69),
    (7700, "Mouscron", "Mouscron", "56", 59),
    (7800, "Ath", "Ath", "68", 29),
    (8000, "Brugge", "Brugge", "50", 119),
    (8300, "Knokke-Heist", "Knokke-Heist", "50", 33),
    (8400, "Oostende", "Oostende", "59", 72),
    (8500, "Kortrijk", "Kortrijk", "56", 78),
    (8790, "Waregem", "Waregem", "56", 39),
    (8800, "Roeselare", "Roeselare", "51", 64),
    (8900, "Ieper", "Ieper", "57", 35),
    (9000, "Gent", "Gent", "9", 265),
    (9100, "Sint-Niklaas", "Sint-Niklaas", "3", 79),
    (9160, "Lokeren", "Lokeren", "9", 42),
    (9200, "Dendermonde", "Dendermonde", "52", 46),
    (9230, "Wetteren", "Wetteren", "9", 26),
    (9240, "Zele", "Zele", "52", 21),
    (9300, "Aalst", "Aalst", "53", 88),
    (9400, "Ninove", "Ninove", "54", 39),
    (9500, "Geraardsbergen", "Geraardsbergen", "54", 34),
    (9700, "Oudenaarde", "Oudenaarde", "55", 32),
    (9800, "Deinze", "Deinze", "9", 44),
    (9900, "Eeklo", "Eeklo", "9", 21),
)
_BRUSSELS, _FLANDERS, _WALLONIA = range(3)
# Regional population shares, so a small table of towns does not skew the language mix.
_REGION_SHARE: Final = (0.105, 0.575, 0.32)
# Language by region (nl, fr, en): Brussels is mostly French-speaking with many expats.
_REGION_LANGUAGE_P: Final = ((0.12, 0.72, 0.16), (0.95, 0.01, 0.04), (0.01, 0.97, 0.02))

# (postcode, city, weight): French debtors of a Belgian creditor live mostly near the border.
_FR_PLACES: Final[tuple[tuple[str, str, int], ...]] = (
    ("59000", "Lille", 23),
    ("59100", "Roubaix", 10),
    ("59200", "Tourcoing", 10),
    ("59650", "Villeneuve-d'Ascq", 6),
    ("59300", "Valenciennes", 4),
    ("59140", "Dunkerque", 9),
    ("59600", "Maubeuge", 3),
    ("59500", "Douai", 4),
    ("62300", "Lens", 3),
    ("62000", "Arras", 4),
    ("62100", "Calais", 7),
    ("62200", "Boulogne-sur-Mer", 4),
    ("08000", "Charleville-Mézières", 5),
    ("51100", "Reims", 18),
    ("57000", "Metz", 12),
    ("67000", "Strasbourg", 28),
    ("54000", "Nancy", 10),
    ("80000", "Amiens", 13),
    ("75011", "Paris", 15),
    ("75015", "Paris", 23),
    ("75018", "Paris", 19),
    ("75020", "Paris", 19),
    ("69003", "Lyon", 10),
    ("69007", "Lyon", 8),
    ("13008", "Marseille", 8),
    ("33000", "Bordeaux", 26),
    ("31000", "Toulouse", 20),
    ("44000", "Nantes", 31),
    ("06000", "Nice", 34),
    ("34000", "Montpellier", 29),
    ("35000", "Rennes", 22),
    ("93200", "Saint-Denis", 11),
    ("92100", "Boulogne-Billancourt", 12),
    ("78000", "Versailles", 8),
)

# (commune, first postcode, last postcode, population in thousands).
_LU_PLACES: Final[tuple[tuple[str, int, int, int], ...]] = (
    ("Luxembourg", 1110, 2999, 128),
    ("Esch-sur-Alzette", 4001, 4398, 36),
    ("Differdange", 4501, 4599, 28),
    ("Dudelange", 3401, 3490, 21),
    ("Pétange", 4701, 4760, 19),
    ("Hesperange", 5801, 5899, 16),
    ("Bettembourg", 3201, 3290, 11),
    ("Schifflange", 3801, 3879, 11),
    ("Strassen", 8001, 8099, 10),
    ("Mersch", 7501, 7599, 10),
    ("Ettelbruck", 9001, 9099, 9),
    ("Diekirch", 9201, 9290, 7),
    ("Wiltz", 9501, 9599, 7),
    ("Echternach", 6401, 6499, 6),
    ("Remich", 5501, 5599, 4),
)

# Letters Dutch postcodes actually use; SA, SD and SS are never issued, so S is left out.
_NL_POSTCODE_LETTERS: Final = "ABCDEGHJKLMNPRTVWXZ"

# Mobile prefixes of the national significant number, all inside the ranges libphonenumber
# treats as valid mobile numbers for the country.
_BE_MOBILE: Final = (
    "456", "460", "465", "466", "467", "468", "470", "471", "472", "473", "474", "475",
    "476", "477", "478", "479", "483", "484", "485", "486", "487", "488", "489", "491",
    "492", "493", "494", "495", "496", "497", "498", "499",
)  # fmt: skip
_NL_MOBILE: Final = ("61", "62", "63", "64", "65", "68")
_FR_MOBILE: Final = tuple(f"6{d}" for d in "01245678") + tuple(f"7{d}" for d in "5678")
_LU_MOBILE: Final = ("621", "628", "661", "668", "671", "691", "698")
# (prefix, subscriber digits): German mobile numbers have 7 or 8 digits after the prefix.
_DE_MOBILE: Final = (
    ("151", 8), ("152", 8), ("157", 8), ("159", 8), ("160", 7), ("162", 7), ("163", 7),
    ("170", 7), ("171", 7), ("172", 7), ("173", 7), ("174", 7), ("175", 7), ("176", 8),
    ("177", 8), ("178", 8), ("179", 8),
)  # fmt: skip
# One-digit Belgian areas only allow some first subscriber digits.
_BE_SHORT_AREA_FIRST: Final = {"2": "2345678", "3": "2345678", "4": "23", "9": "234"}
_NL_AREAS: Final = (
    "10", "13", "15", "20", "23", "24", "26", "30", "33", "35", "36", "38", "40", "43",
    "45", "46", "50", "53", "55", "58", "70", "71", "72", "73", "74", "75", "76", "77",
)  # fmt: skip
_FR_FIXED_LEADS: Final = (
    tuple(f"1{d}" for d in "0123456789")
    + tuple(f"2{d}" for d in "01234578")
    + tuple(f"3{d}" for d in "0123456789")
    + tuple(f"4{d}" for d in "123456789")
    + tuple(f"5{d}" for d in "012345678")
)

_Formatter = Callable[[str, int], str]


def _be_groups(tail: str, sep: str) -> str:
    # Belgian habit: 6 digits as 2-2-2, 7 digits (one-digit area) as 3-2-2.
    if len(tail) == 7:
        return f"{tail[:3]}{sep}{tail[3:5]}{sep}{tail[5:]}"
    return f"{tail[:2]}{sep}{tail[2:4]}{sep}{tail[4:]}"


def _fr_pairs(digits: str, sep: str) -> str:
    return sep.join(digits[i : i + 2] for i in range(0, len(digits), 2))


# Each style is (weight, format(national significant number, length of area/prefix part)).
# Every style here is parsed as the same valid number by phonenumbers.parse(x, country).
_BE_STYLES: Final[tuple[tuple[int, _Formatter], ...]] = (
    (34, lambda n, a: f"0{n[:a]} {_be_groups(n[a:], ' ')}"),
    (12, lambda n, a: f"0{n}"),
    (18, lambda n, a: f"+32{n}"),
    (12, lambda n, a: f"+32 {n[:a]} {_be_groups(n[a:], ' ')}"),
    (10, lambda n, a: f"0{n[:a]}/{_be_groups(n[a:], '.')}"),
    (5, lambda n, a: f"0032 {n[:a]} {_be_groups(n[a:], ' ')}"),
    (3, lambda n, a: f"+32 (0){n[:a]} {_be_groups(n[a:], '.')}"),
    (4, lambda n, a: f"0{n[:a]}.{_be_groups(n[a:], '.')}"),
    (2, lambda n, a: f"0{n[:a]} {n[a:-3]} {n[-3:]}"),
)
_NL_STYLES: Final[tuple[tuple[int, _Formatter], ...]] = (
    (30, lambda n, a: f"0{n[:a]} {n[a:]}"),
    (18, lambda n, a: f"0{n[:a]}-{n[a:]}"),
    (14, lambda n, a: f"0{n}"),
    (16, lambda n, a: f"+31{n}"),
    (10, lambda n, a: f"+31 {n[:a]} {n[a:]}"),
    (4, lambda n, a: f"0031 {n[:a]} {n[a:]}"),
    (3, lambda n, a: f"+31 (0){n[:a]} {n[a:]}"),
    (5, lambda n, a: f"0{n[:a]} {n[a:-4]} {n[-4:]}"),
)
_FR_STYLES: Final[tuple[tuple[int, _Formatter], ...]] = (
    (40, lambda n, a: f"0{n[0]} {_fr_pairs(n[1:], ' ')}"),
    (15, lambda n, a: f"0{n[0]}.{_fr_pairs(n[1:], '.')}"),
    (12, lambda n, a: f"0{n}"),
    (14, lambda n, a: f"+33{n}"),
    (10, lambda n, a: f"+33 {n[0]} {_fr_pairs(n[1:], ' ')}"),
    (4, lambda n, a: f"0033 {n[0]} {_fr_pairs(n[1:], ' ')}"),
    (3, lambda n, a: f"+33 (0){n[0]} {_fr_pairs(n[1:], ' ')}"),
    (2, lambda n, a: f"0{n[0]}-{_fr_pairs(n[1:], '-')}"),
)
_LU_STYLES: Final[tuple[tuple[int, _Formatter], ...]] = (
    (35, lambda n, a: f"{n[:3]} {n[3:6]} {n[6:]}"),
    (12, lambda n, a: n),
    (25, lambda n, a: f"+352 {n[:3]} {n[3:6]} {n[6:]}"),
    (15, lambda n, a: f"+352{n}"),
    (8, lambda n, a: f"00352 {n[:3]} {n[3:6]} {n[6:]}"),
    (5, lambda n, a: f"{n[:3]} {n[3:5]} {n[5:7]} {n[7:]}"),
)
_DE_STYLES: Final[tuple[tuple[int, _Formatter], ...]] = (
    (32, lambda n, a: f"0{n[:a]} {n[a:]}"),
    (12, lambda n, a: f"0{n[:a]}/{n[a:]}"),
    (12, lambda n, a: f"0{n}"),
    (16, lambda n, a: f"+49{n}"),
    (14, lambda n, a: f"+49 {n[:a]} {n[a:]}"),
    (4, lambda n, a: f"0049 {n[:a]} {n[a:]}"),
    (5, lambda n, a: f"+49 (0){n[:a]} {n[a:]}"),
    (5, lambda n, a: f"0{n[:a]}-{n[a:]}"),
)
_PHONE_STYLES: Final = (_BE_STYLES, _NL_STYLES, _FR_STYLES, _LU_STYLES, _DE_STYLES)

# Mailbox providers by country, weighted by rough market share.
_EMAIL_DOMAINS: Final[tuple[tuple[tuple[str, int], ...], ...]] = (
    (
        ("gmail.com", 34), ("hotmail.com", 11), ("telenet.be", 15), ("outlook.com", 8),
        ("skynet.be", 7), ("hotmail.be", 5), ("proximus.be", 4), ("live.be", 4),
        ("icloud.com", 4), ("yahoo.com", 3), ("yahoo.fr", 2), ("scarlet.be", 2), ("msn.com", 1),
    ),
    (
        ("gmail.com", 33), ("hotmail.com", 14), ("ziggo.nl", 12), ("outlook.com", 9),
        ("kpnmail.nl", 7), ("live.nl", 7), ("icloud.com", 5), ("planet.nl", 4), ("xs4all.nl", 3),
        ("hotmail.nl", 4), ("yahoo.com", 2),
    ),
    (
        ("gmail.com", 36), ("orange.fr", 14), ("free.fr", 9), ("hotmail.fr", 9), ("yahoo.fr", 8),
        ("sfr.fr", 6), ("laposte.net", 6), ("outlook.fr", 5), ("wanadoo.fr", 4), ("icloud.com", 3),
    ),
    (
        ("gmail.com", 38), ("pt.lu", 18), ("hotmail.com", 12), ("outlook.com", 10),
        ("yahoo.fr", 8), ("icloud.com", 7), ("internet.lu", 4), ("web.de", 3),
    ),
    (
        ("gmail.com", 28), ("gmx.de", 20), ("web.de", 18), ("t-online.de", 10),
        ("outlook.de", 7), ("yahoo.de", 6), ("hotmail.de", 6), ("icloud.com", 5),
    ),
)  # fmt: skip

# (description template, median euros, log-sd): a collection portfolio of utility, telecom,
# retail, health and insurance creditors.
_INVOICE_KINDS: Final[tuple[tuple[str, float, float], ...]] = (
    ("Electricity bill {month} {year}", 95.0, 0.5),
    ("Gas and electricity annual settlement {year}", 420.0, 0.8),
    ("Mobile subscription {month} {year}", 32.0, 0.45),
    ("Internet and TV subscription {month} {year}", 68.0, 0.35),
    ("Water bill {year} Q{quarter}", 110.0, 0.5),
    ("Online order {order}", 85.0, 0.9),
    ("Hospital invoice {month} {year}", 180.0, 1.0),
    ("Insurance premium {month} {year}", 380.0, 0.6),
    ("Furniture order {order}", 900.0, 0.7),
    ("Fitness membership {month} {year}", 35.0, 0.3),
)
_KIND_P = np.array([0.17, 0.06, 0.2, 0.14, 0.06, 0.13, 0.07, 0.06, 0.03, 0.08])
# Subscriptions are usually priced at .99 or whole euros.
_ROUND_PRICED_KINDS: Final = frozenset({2, 3, 9})
_P_OTHER_KIND: Final = 0.15
_MIN_CENTS: Final = 500
_MAX_CENTS: Final = 2_500_000
_MONTHS: Final = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip

# Invoices are issued within this many days before as_of (24 months, never more).
_HISTORY_DAYS: Final = 729
_MAX_OVERDUE_DAYS: Final = 120
_MAX_NOT_YET_DUE_DAYS: Final = 20


@dataclass(frozen=True)
class PortfolioSummary:
    """What `generate_portfolio` wrote, and where."""

    out_dir: Path
    seed: int
    as_of: date
    debtors: int
    invoices: int
    payments: int
    persona_counts: dict[str, int]


@dataclass(frozen=True)
class _NamePool:
    """First names, last names and their ASCII e-mail slugs from one Faker locale."""

    first: tuple[str, ...]
    first_slug: tuple[str, ...]
    last: tuple[str, ...]
    last_slug: tuple[str, ...]


@dataclass(frozen=True)
class _Pools:
    names: tuple[_NamePool, ...]  # nl_BE, fr_BE, en_GB, nl_NL, fr_FR, de_DE
    streets: tuple[tuple[str, ...], ...]  # Flemish, Walloon, Dutch, French, German
    nl_cities: tuple[str, ...]
    de_cities: tuple[str, ...]


_NAME_NL_BE, _NAME_FR_BE, _NAME_EN, _NAME_NL_NL, _NAME_FR_FR, _NAME_DE = range(6)
_STREET_VLA, _STREET_WAL, _STREET_NL, _STREET_FR, _STREET_DE = range(5)

# Faker invents streets from first names; mixing in the streets every Belgian town has
# keeps the pool from looking synthetic.
_COMMON_STREETS_NL_BE: Final = (
    "Kerkstraat", "Stationsstraat", "Molenstraat", "Dorpsstraat", "Nieuwstraat",
    "Schoolstraat", "Kapelstraat", "Beekstraat", "Bosstraat", "Veldstraat", "Hoogstraat",
    "Lindelaan", "Markt", "Grote Markt", "Kouter", "Steenweg",
)  # fmt: skip
_COMMON_STREETS_FR_BE: Final = (
    "Rue de la Station", "Rue de l'Église", "Rue du Moulin", "Chaussée de Bruxelles",
    "Rue Haute", "Avenue Louise", "Rue des Écoles", "Place du Marché", "Rue Neuve",
    "Rue de la Gare", "Grand-Place", "Rue du Centre", "Chaussée de Louvain",
)  # fmt: skip

_POOL_NAMES: Final = 3000
_POOL_STREETS: Final = 2000
_POOL_CITIES: Final = 1000


def _slug(text: str) -> str:
    # E-mail local parts are plain lower-case ASCII: drop accents, spaces and apostrophes.
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return "".join(ch for ch in ascii_text.lower() if ch.isalnum())


@lru_cache(maxsize=4)
def _build_pools(seed: int) -> _Pools:
    # Faker is slow per call, so draw a few thousand values once and sample them with numpy;
    # duplicates are kept on purpose so Faker's name frequencies carry over.
    from faker import Faker

    def faker(locale: str) -> Faker:
        fake = Faker(locale)
        fake.seed_instance(seed)
        return fake

    def names(locale: str) -> _NamePool:
        # One weighted draw over the locale's name lists is what first_name()/last_name() do
        # per call, but a hundred times faster for the weighted Belgian lists.
        person = faker(locale).provider("faker.providers.person")
        first = tuple(
            str(x)
            for x in person.random_elements(
                person.first_names, length=_POOL_NAMES, use_weighting=True
            )
        )
        last = tuple(
            str(x)
            for x in person.random_elements(
                person.last_names, length=_POOL_NAMES, use_weighting=True
            )
        )
        return _NamePool(
            first=first,
            first_slug=tuple(_slug(x) or "info" for x in first),
            last=last,
            last_slug=tuple(_slug(x) or "mail" for x in last),
        )

    def streets(locale: str) -> tuple[str, ...]:
        fake = faker(locale)
        return tuple(str(fake.street_name()) for _ in range(_POOL_STREETS))

    def flemish_streets() -> tuple[str, ...]:
        # Faker's nl_BE street_name() is "{first_name}{suffix}" with a slow weighted draw
        # per call; composing the same thing from two bulk draws is equivalent and fast.
        address = faker("nl_BE").provider("faker.providers.address")
        firsts = address.random_elements(
            address.generator.provider("faker.providers.person").first_names,
            length=_POOL_STREETS,
            use_weighting=True,
        )
        suffixes = address.random_elements(address.street_suffixes, length=_POOL_STREETS)
        return tuple(f"{f}{s}" for f, s in zip(firsts, suffixes, strict=True))

    fr_streets = streets("fr_FR")
    walloon = tuple(s[:1].upper() + s[1:] for s in fr_streets)
    nl_fake = faker("nl_NL")
    de_fake = faker("de_DE")
    return _Pools(
        names=tuple(
            names(locale) for locale in ("nl_BE", "fr_BE", "en_GB", "nl_NL", "fr_FR", "de_DE")
        ),
        streets=(
            flemish_streets() + _COMMON_STREETS_NL_BE * 40,
            walloon + _COMMON_STREETS_FR_BE * 40,
            streets("nl_NL"),
            fr_streets,
            streets("de_DE"),
        ),
        nl_cities=tuple(str(nl_fake.city()) for _ in range(_POOL_CITIES)),
        de_cities=tuple(str(de_fake.city()) for _ in range(_POOL_CITIES)),
    )


def _cumulative(weights: Sequence[float]) -> list[float]:
    total = float(sum(weights))
    cum = [w / total for w in accumulate(weights)]
    cum[-1] = 1.0
    return cum


def _pick(cum: Sequence[float], u: float) -> int:
    return min(bisect_right(cum, u), len(cum) - 1)


def _be_region(postcode: int) -> int:
    if postcode < 1300:
        return _BRUSSELS
    if postcode < 1500 or 4000 <= postcode < 8000:
        return _WALLONIA
    return _FLANDERS


def _be_place_probabilities() -> npt.NDArray[np.float64]:
    weights = np.array([p[4] for p in _BE_PLACES], dtype=np.float64)
    regions = np.array([_be_region(p[0]) for p in _BE_PLACES])
    for region, share in enumerate(_REGION_SHARE):
        mask = regions == region
        weights[mask] *= share / weights[mask].sum()
    probabilities: npt.NDArray[np.float64] = weights / weights.sum()
    return probabilities


_BE_PLACE_P: Final = _be_place_probabilities()
_FR_PLACE_P: Final = np.array([p[2] for p in _FR_PLACES], dtype=np.float64) / sum(
    p[2] for p in _FR_PLACES
)
_LU_PLACE_P: Final = np.array([p[3] for p in _LU_PLACES], dtype=np.float64) / sum(
    p[3] for p in _LU_PLACES
)
_STYLE_CUM: Final = tuple(_cumulative([w for w, _ in styles]) for styles in _PHONE_STYLES)
_DOMAIN_CUM: Final = tuple(_cumulative([w for _, w in domains]) for domains in _EMAIL_DOMAINS)
_REGION_LANGUAGE_CUM: Final = tuple(_cumulative(p) for p in _REGION_LANGUAGE_P)
_LANGUAGES: Final = ("nl", "fr", "en")


def _cents(value: int) -> str:
    return f"{value // 100}.{value % 100:02d}"


def _email_local(first: str, last: str, year: int | None, u: float, number: int) -> str:
    # Shapes people really pick; digits (often the birth year) separate namesakes.
    digits = f"{year % 100:02d}" if year is not None and number % 2 == 0 else str(number % 999 + 1)
    if u < 0.34:
        return f"{first}.{last}"
    if u < 0.46:
        return f"{first}{last}"
    if u < 0.62:
        return f"{first}.{last}{digits}"
    if u < 0.70:
        return f"{first[0]}{last}"
    if u < 0.76:
        return f"{first[0]}.{last}"
    if u < 0.81:
        return f"{first}_{last}"
    if u < 0.86:
        return f"{last}.{first}"
    if u < 0.93:
        return f"{first}{digits}"
    if u < 0.96:
        return f"{first}-{last}"
    return f"{last}{first[0]}{digits}"


def _mobile_number(country: int, pick: int, number: int) -> tuple[str, int]:
    """A mobile national significant number and the length of its prefix part."""
    digits = f"{number:08d}"
    if country == _BE:
        return _BE_MOBILE[pick % len(_BE_MOBILE)] + digits[-6:], 3
    if country == _NL:
        return _NL_MOBILE[pick % len(_NL_MOBILE)] + digits[-7:], 1
    if country == _FR:
        return _FR_MOBILE[pick % len(_FR_MOBILE)] + digits[-7:], 1
    if country == _LU:
        return _LU_MOBILE[pick % len(_LU_MOBILE)] + digits[-6:], 3
    prefix, length = _DE_MOBILE[pick % len(_DE_MOBILE)]
    return prefix + digits[-length:], 3


def _landline_number(country: int, be_area: str, pick: int, number: int) -> tuple[str, int]:
    """A fixed-line national significant number and the length of its area code."""
    digits = f"{number:08d}"
    if country == _BE:
        if len(be_area) == 1:
            first = _BE_SHORT_AREA_FIRST[be_area]
            return be_area + first[pick % len(first)] + digits[-6:], 1
        return be_area + digits[-6:], 2
    if country == _NL:
        return _NL_AREAS[pick % len(_NL_AREAS)] + digits[-7:], 2
    return _FR_FIXED_LEADS[pick % len(_FR_FIXED_LEADS)] + digits[-7:], 1


class _DayTable:
    """ISO strings and calendar fields for every day a portfolio can mention."""

    def __init__(self, as_of: date) -> None:
        self.as_of = as_of.toordinal()
        self.first = self.as_of - _HISTORY_DAYS - 40
        last = self.as_of + _MAX_NOT_YET_DUE_DAYS + 40
        days = [date.fromordinal(o) for o in range(self.first, last + 1)]
        self.iso = [d.isoformat() for d in days]
        self.month = [_MONTHS[d.month - 1] for d in days]
        self.year = [d.year for d in days]
        self.quarter = [(d.month - 1) // 3 + 1 for d in days]


@dataclass
class _Counters:
    invoices: int = 0
    payments: int = 0


def generate_portfolio(
    out_dir: Path,
    *,
    debtors: int,
    seed: int,
    as_of: date,
    invoices_per_debtor: float = 10 / 3,
    survey_share: float = 0.05,
    progress: Callable[[int], None] | None = None,
) -> PortfolioSummary:
    """Write a reproducible synthetic portfolio (CSV files and a manifest) into `out_dir`.

    `survey_answers.csv` holds the persona-survey answers of a random `survey_share` of
    the debtors, drawn from a separate random stream so that the other files do not
    depend on it.
    """
    if debtors < 0:
        raise ValueError(f"debtors must be >= 0, got {debtors}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if not math.isfinite(invoices_per_debtor) or invoices_per_debtor < 1:
        raise ValueError(f"invoices_per_debtor must be >= 1, got {invoices_per_debtor}")
    if not 0 <= survey_share <= 1:
        raise ValueError(f"survey_share must be between 0 and 1, got {survey_share}")

    out_dir.mkdir(parents=True, exist_ok=True)
    pools = _build_pools(seed)
    rng = np.random.Generator(np.random.PCG64(seed))
    survey_rng = np.random.Generator(np.random.PCG64([seed, 1]))
    days = _DayTable(as_of)
    counters = _Counters()
    surveyed = 0
    persona_counts = [0] * len(LATENT_PERSONAS)

    with (
        _open_csv(out_dir / "debtors.csv") as debtor_fh,
        _open_csv(out_dir / "invoices.csv") as invoice_fh,
        _open_csv(out_dir / "payments.csv") as payment_fh,
        _open_csv(out_dir / "ground_truth.csv") as truth_fh,
        _open_csv(out_dir / "survey_answers.csv") as survey_fh,
    ):
        debtor_out = csv.writer(debtor_fh, lineterminator="\n")
        invoice_out = csv.writer(invoice_fh, lineterminator="\n")
        payment_out = csv.writer(payment_fh, lineterminator="\n")
        truth_out = csv.writer(truth_fh, lineterminator="\n")
        debtor_out.writerow(DEBTOR_HEADER)
        invoice_out.writerow(INVOICE_HEADER)
        payment_out.writerow(PAYMENT_HEADER)
        truth_out.writerow(GROUND_TRUTH_HEADER)
        survey_out = csv.writer(survey_fh, lineterminator="\n")
        survey_out.writerow(survey_header())

        for start in range(0, debtors, _CHUNK):
            size = min(_CHUNK, debtors - start)
            personas = rng.choice(len(LATENT_PERSONAS), size=size, p=_PERSONA_P)
            refs = [f"D{start + i + 1:07d}" for i in range(size)]
            debtor_rows, truth_rows = _debtor_rows(rng, pools, as_of, refs, personas)
            debtor_out.writerows(debtor_rows)
            truth_out.writerows(truth_rows)
            invoice_rows, payment_rows = _invoice_rows(
                rng, days, refs, personas, invoices_per_debtor, counters
            )
            invoice_out.writerows(invoice_rows)
            payment_out.writerows(payment_rows)
            asked = np.flatnonzero(survey_rng.random(size) < survey_share)
            survey_out.writerows(
                survey_rows(survey_rng, [refs[i] for i in asked], personas[asked], as_of)
            )
            surveyed += len(asked)
            for code, count in enumerate(np.bincount(personas, minlength=5).tolist()):
                persona_counts[code] += count
            if progress is not None:
                progress(start + size)

    counts = dict(zip(LATENT_PERSONAS, persona_counts, strict=True))
    manifest = {
        "generator": GENERATOR_VERSION,
        "seed": seed,
        "as_of": as_of.isoformat(),
        "invoices_per_debtor": invoices_per_debtor,
        "files": {
            "debtors.csv": debtors,
            "invoices.csv": counters.invoices,
            "payments.csv": counters.payments,
            "ground_truth.csv": debtors,
            "survey_answers.csv": surveyed,
        },
        "survey_share": survey_share,
        "persona_counts": counts,
    }
    (out_dir / "manifest.json").write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return PortfolioSummary(
        out_dir=out_dir,
        seed=seed,
        as_of=as_of,
        debtors=debtors,
        invoices=counters.invoices,
        payments=counters.payments,
        persona_counts=counts,
    )


def _open_csv(path: Path) -> TextIO:
    # newline="" leaves line endings to csv.writer, so files are identical on every OS.
    return path.open("w", encoding="utf-8", newline="")


def _debtor_rows(
    rng: np.random.Generator,
    pools: _Pools,
    as_of: date,
    refs: list[str],
    personas: _I64,
) -> tuple[list[list[str]], list[list[str]]]:
    size = len(refs)
    country = rng.choice(len(_COUNTRIES), size=size, p=_COUNTRY_P)
    be_place = rng.choice(len(_BE_PLACES), size=size, p=_BE_PLACE_P)
    fr_place = rng.choice(len(_FR_PLACES), size=size, p=_FR_PLACE_P)
    lu_place = rng.choice(len(_LU_PLACES), size=size, p=_LU_PLACE_P)

    age_normal = np.rint(_AGE_MEAN[personas] + _AGE_SD[personas] * rng.standard_normal(size))
    age = np.clip(age_normal, _AGE_LO[personas], _AGE_HI[personas]).astype(np.int64)
    occasional = personas == _OCCASIONAL
    age = np.where(occasional, rng.integers(30, 56, size=size), age)

    uniforms = rng.random((size, 10))
    old = age >= 70
    # Older debtors use e-mail less and keep a landline; only LU/DE numbers stay mobile-only.
    p_email = np.where(old & ~occasional, _P_EMAIL[personas] * 0.5, _P_EMAIL[personas])
    has_email = uniforms[:, 0] < p_email
    has_phone = uniforms[:, 1] < _P_PHONE[personas]
    p_landline = _P_LANDLINE[personas] + np.where(age >= 65, 0.3, 0.0)
    landline = (uniforms[:, 2] < p_landline) & (country <= _FR)
    no_birth_year = uniforms[:, 3] < _P_NO_BIRTH_YEAR[personas]
    no_timezone = uniforms[:, 4] < _P_NO_TIMEZONE
    vulnerable = uniforms[:, 5] < _P_VULNERABLE[personas] + np.where(age >= 75, 0.04, 0.0)
    u_language = uniforms[:, 6].tolist()
    u_email_shape = uniforms[:, 7].tolist()
    u_domain = uniforms[:, 8].tolist()
    u_style = uniforms[:, 9].tolist()

    picks = rng.integers(0, 1 << 30, size=(size, 11)).tolist()

    birth_year = (as_of.year - age).tolist()
    country_list = country.tolist()
    be_list, fr_list, lu_list = be_place.tolist(), fr_place.tolist(), lu_place.tolist()
    email_list, phone_list, landline_list = (
        has_email.tolist(),
        has_phone.tolist(),
        landline.tolist(),
    )
    no_year_list, no_tz_list = no_birth_year.tolist(), no_timezone.tolist()
    vulnerable_list, persona_list = vulnerable.tolist(), personas.tolist()
    debtor_rows: list[list[str]] = []
    truth_rows: list[list[str]] = []
    for i, ref in enumerate(refs):
        c = country_list[i]
        pk = picks[i]
        language, name_pool, street_pool, city, postcode, area = _place(
            pools, c, be_list[i], fr_list[i], lu_list[i], u_language[i], pk
        )
        names = pools.names[name_pool]
        fi = pk[0] % len(names.first)
        li = pk[1] % len(names.last)
        year: int | None = None if no_year_list[i] else birth_year[i]

        email = ""
        if email_list[i]:
            local = _email_local(
                names.first_slug[fi], names.last_slug[li], year, u_email_shape[i], pk[2]
            )
            domains = _EMAIL_DOMAINS[c]
            email = f"{local}@{domains[_pick(_DOMAIN_CUM[c], u_domain[i])][0]}"

        phone = ""
        if phone_list[i]:
            if landline_list[i]:
                nsn, head = _landline_number(c, area, pk[3], pk[4])
            else:
                nsn, head = _mobile_number(c, pk[3], pk[4])
            styles = _PHONE_STYLES[c]
            phone = styles[_pick(_STYLE_CUM[c], u_style[i])][1](nsn, head)

        street = _street(pools.streets[street_pool], c, pk[5], pk[6])
        debtor_rows.append(
            [
                ref,
                f"{names.first[fi]} {names.last[li]}",
                email,
                phone,
                language,
                _COUNTRIES[c],
                street,
                postcode,
                city,
                "" if year is None else str(year),
                "" if no_tz_list[i] else _TIMEZONES[c],
            ]
        )
        truth_rows.append(
            [ref, LATENT_PERSONAS[persona_list[i]], "true" if vulnerable_list[i] else "false"]
        )
    return debtor_rows, truth_rows


def _place(
    pools: _Pools,
    country: int,
    be_place: int,
    fr_place: int,
    lu_place: int,
    u_language: float,
    pk: list[int],
) -> tuple[str, int, int, str, str, str]:
    """Language, name pool, street pool, city, postcode and BE area code for one debtor."""
    if country == _BE:
        be_postcode, city_nl, city_fr, area, _ = _BE_PLACES[be_place]
        region = _be_region(be_postcode)
        language = _LANGUAGES[_pick(_REGION_LANGUAGE_CUM[region], u_language)]
        name_pool = (_NAME_NL_BE, _NAME_FR_BE, _NAME_EN)[_LANGUAGES.index(language)]
        street_pool = _STREET_VLA if region == _FLANDERS else _STREET_WAL
        city = city_nl if language == "nl" else city_fr
        return language, name_pool, street_pool, city, str(be_postcode), area
    if country == _NL:
        language = "en" if u_language < 0.03 else "nl"
        letters = _NL_POSTCODE_LETTERS
        postcode = (
            f"{1000 + pk[7] % 9000} {letters[pk[8] % len(letters)]}{letters[pk[9] % len(letters)]}"
        )
        city = pools.nl_cities[pk[10] % len(pools.nl_cities)]
        return language, _NAME_NL_NL, _STREET_NL, city, postcode, ""
    if country == _FR:
        postcode, city, _ = _FR_PLACES[fr_place]
        return "fr", _NAME_FR_FR, _STREET_FR, city, postcode, ""
    if country == _LU:
        city, low, high, _ = _LU_PLACES[lu_place]
        number = low + pk[7] % (high - low + 1)
        # Luxembourg writes postcodes both with and without the country prefix.
        postcode = str(number) if pk[8] % 5 == 0 else f"L-{number}"
        language = "en" if u_language < 0.15 else "fr"
        return language, _NAME_FR_FR, _STREET_FR, city, postcode, ""
    language = "en" if u_language < 0.6 else ("fr" if u_language < 0.8 else "nl")
    postcode = f"{1067 + pk[7] % (99998 - 1067 + 1):05d}"
    city = pools.de_cities[pk[8] % len(pools.de_cities)]
    return language, _NAME_DE, _STREET_DE, city, postcode, ""


def _street(pool: tuple[str, ...], country: int, pick: int, number: int) -> str:
    name = pool[pick % len(pool)]
    # House numbers cluster low, like real streets.
    house = 1 + int(200 * (number % 10_000 / 10_000) ** 2.2)
    if country == _BE:
        box = number // 10_000 % 25
        if box == 0:
            suffix = " bus 2" if name.endswith(("straat", "laan", "weg")) else " bte 2"
            return f"{name} {house}{suffix}"
        return f"{name} {house}"
    if country == _NL:
        return f"{name} {house}{'A' if number // 10_000 % 15 == 0 else ''}"
    if country == _FR:
        return f"{house} {name}"
    if country == _LU:
        return f"{house}, {name}"
    return f"{name} {house}"


def _invoice_rows(
    rng: np.random.Generator,
    days: _DayTable,
    refs: list[str],
    personas: _I64,
    invoices_per_debtor: float,
    counters: _Counters,
) -> tuple[list[list[str]], list[list[str]]]:
    size = len(refs)
    counts = 1 + rng.poisson(invoices_per_debtor - 1, size=size)
    total = int(counts.sum())
    owner = np.repeat(np.arange(size), counts)
    first = np.cumsum(counts) - counts
    last = first + counts - 1
    recency = last[owner] - np.arange(total)  # 0 = most recent invoice of its debtor
    persona = personas[owner]

    term = np.where(rng.random(total) < 0.55, 30, 14)
    # The most recent invoice is open: either not yet due, or overdue by 1..120 days.
    last_term = term[last]
    not_due = rng.random(size) < _P_OPEN_NOT_DUE[personas]
    ahead = 1 + np.floor(rng.random(size) * np.minimum(_MAX_NOT_YET_DUE_DAYS, last_term)).astype(
        np.int64
    )
    overdue = 1 + np.floor(
        (_MAX_OVERDUE_DAYS - 1) * rng.beta(_OVERDUE_A[personas], _OVERDUE_B[personas])
    ).astype(np.int64)
    last_due = days.as_of + np.where(not_due, ahead, -overdue)
    last_issue = last_due - last_term

    # Older invoices: sorted uniform dates between the start of the history and a week before
    # the open invoice, so they appear in chronological order per debtor.
    u = rng.random(total)
    u_sorted = u[np.argsort(owner + u * 0.999, kind="stable")]
    window_start = days.as_of - _HISTORY_DAYS
    span = last_issue[owner] - 7 - window_start + 1
    issue = np.where(
        recency == 0,
        last_issue[owner],
        window_start + np.floor(u_sorted * span).astype(np.int64),
    )
    due = issue + term

    main_kind = rng.choice(len(_INVOICE_KINDS), size=size, p=_KIND_P)
    other_kind = rng.choice(len(_INVOICE_KINDS), size=total, p=_KIND_P)
    kind = np.where(rng.random(total) < _P_OTHER_KIND, other_kind, main_kind[owner])
    medians = np.log(np.array([k[1] * 100 for k in _INVOICE_KINDS]))
    sigmas = np.array([k[2] for k in _INVOICE_KINDS])
    raw = np.exp(medians[kind] + sigmas[kind] * rng.standard_normal(total))
    cents = np.clip(np.rint(raw), _MIN_CENTS, _MAX_CENTS).astype(np.int64)
    round_price = rng.random(total) < 0.5
    cents = np.where(
        round_price & np.isin(kind, list(_ROUND_PRICED_KINDS)), cents // 100 * 100 + 99, cents
    )
    order_no = rng.integers(1_000_000, 10_000_000, size=total)

    # Payment behaviour draws, one set per invoice (used only for past invoices).
    unpaid = rng.random(total) < _P_UNPAID[persona]
    late = rng.random(total) < _P_LATE[persona]
    low = np.where(late, _LATE_LO[persona], _ON_TIME_LO[persona])
    high = np.where(late, _LATE_HI[persona], _ON_TIME_HI[persona])
    delay = (low + np.floor(rng.random(total) * (high - low + 1))).astype(np.int64)
    split = rng.random(total) < _P_INSTALMENTS[persona]
    parts = np.where(
        split, 2 + np.floor(rng.random(total) * (_MAX_INSTALMENTS[persona] - 1)), 1
    ).astype(np.int64)
    partial = rng.random(total) < _P_PARTIAL[persona]
    partial_share = 0.3 + 0.5 * rng.random(total)
    gaps = rng.integers(14, 36, size=(total, 3)).tolist()
    weights = (0.5 + rng.random((total, 4))).tolist()
    unpaid_list, partial_list = unpaid.tolist(), partial.tolist()
    parts_list, delay_list, share_list = parts.tolist(), delay.tolist(), partial_share.tolist()

    offset = days.first
    as_of = days.as_of
    iso = days.iso
    invoice_rows: list[list[str]] = []
    payment_rows: list[list[str]] = []
    next_invoice = counters.invoices
    next_payment = counters.payments
    for j, (d, r, k, iss, du, c, o) in enumerate(
        zip(
            owner.tolist(),
            recency.tolist(),
            kind.tolist(),
            issue.tolist(),
            due.tolist(),
            cents.tolist(),
            order_no.tolist(),
            strict=True,
        )
    ):
        next_invoice += 1
        invoice_ref = f"F{next_invoice:08d}"
        day = iss - offset
        description = _INVOICE_KINDS[k][0].format(
            month=days.month[day], year=days.year[day], quarter=days.quarter[day], order=o
        )
        invoice_rows.append(
            [invoice_ref, refs[d], _cents(c), "EUR", iso[day], iso[du - offset], description]
        )
        if r == 0 or unpaid_list[j]:
            continue
        target = c
        n_parts = parts_list[j]
        if partial_list[j]:
            target = max(1, int(c * share_list[j]))
            n_parts = 1
        paid_on = max(iss, du + delay_list[j])
        for part, amount in enumerate(_instalments(target, n_parts, weights[j])):
            if paid_on > as_of:
                # Not paid yet on as_of: the rest of this invoice stays open.
                break
            next_payment += 1
            payment_rows.append(
                [f"P{next_payment:09d}", invoice_ref, _cents(amount), iso[paid_on - offset]]
            )
            paid_on += gaps[j][min(part, 2)]
    counters.invoices = next_invoice
    counters.payments = next_payment
    return invoice_rows, payment_rows


def _instalments(total: int, parts: int, weights: list[float]) -> list[int]:
    """Split `total` cents into `parts` positive amounts, earlier ones rounded to whole euros."""
    if parts == 1:
        return [total]
    share = sum(weights[:parts])
    amounts: list[int] = []
    for w in weights[: parts - 1]:
        raw = int(total * w / share)
        amounts.append(raw // 100 * 100 if raw >= 100 else max(raw, 1))
    amounts.append(total - sum(amounts))
    return amounts
