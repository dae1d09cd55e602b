"""camt.053 statements: what is read from real-looking documents of versions 02, 04 and 08,
how bad documents are refused (naming entry, line and element), and the writer's round trip.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parcours.domain.structured_communication import structured_communication_digits
from parcours.payments.camt import SUPPORTED_VERSIONS, parse_camt, write_camt
from parcours.payments.statements import Statement, StatementError, StatementLine

D = dt.date

# A Belgian bank's statement in version 02: pretty-printed, with elements the parser skips
# (pagination, owner, servicer, postal address, related agents, batch information).
CAMT_02 = """<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"
          xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <BkToCstmrStmt>
    <GrpHdr>
      <MsgId>KBC-20250304-000123</MsgId>
      <CreDtTm>2025-03-04T06:12:45.123+01:00</CreDtTm>
      <MsgPgntn><PgNb>1</PgNb><LastPgInd>true</LastPgInd></MsgPgntn>
    </GrpHdr>
    <Stmt>
      <Id>2025-061-BE68539007547034</Id>
      <ElctrncSeqNb>61</ElctrncSeqNb>
      <CreDtTm>2025-03-04T06:12:45.123+01:00</CreDtTm>
      <FrToDt>
        <FrDtTm>2025-03-03T00:00:00+01:00</FrDtTm>
        <ToDtTm>2025-03-03T23:59:59+01:00</ToDtTm>
      </FrToDt>
      <Acct>
        <Id><IBAN>BE68539007547034</IBAN></Id>
        <Ccy>EUR</Ccy>
        <Ownr><Nm>Parcours Recouvrement SRL</Nm></Ownr>
        <Svcr><FinInstnId><BIC>KREDBEBB</BIC></FinInstnId></Svcr>
      </Acct>
      <Bal>
        <Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp>
        <Amt Ccy="EUR">1520.30</Amt>
        <CdtDbtInd>CRDT</CdtDbtInd>
        <Dt><Dt>2025-03-02</Dt></Dt>
      </Bal>
      <Bal>
        <Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp>
        <Amt Ccy="EUR">1830.80</Amt>
        <CdtDbtInd>CRDT</CdtDbtInd>
        <Dt><Dt>2025-03-03</Dt></Dt>
      </Bal>
      <TxsSummry><TtlNtries><NbOfNtries>5</NbOfNtries></TtlNtries></TxsSummry>
      <Ntry>
        <Amt Ccy="EUR">125.50</Amt>
        <CdtDbtInd>CRDT</CdtDbtInd>
        <Sts>BOOK</Sts>
        <BookgDt><Dt>2025-03-03</Dt></BookgDt>
        <ValDt><Dt>2025-03-03</Dt></ValDt>
        <AcctSvcrRef>2025030300001234</AcctSvcrRef>
        <BkTxCd>
          <Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn>
        </BkTxCd>
        <NtryDtls>
          <TxDtls>
            <Refs><EndToEndId>PEETERS-INV-0042</EndToEndId></Refs>
            <RltdPties>
              <Dbtr>
                <Nm>Jan Peeters</Nm>
                <PstlAdr><Ctry>BE</Ctry><AdrLine>Meir 1, 2000 Antwerpen</AdrLine></PstlAdr>
              </Dbtr>
              <DbtrAcct><Id><IBAN>BE71 0961 2345 6769</IBAN></Id></DbtrAcct>
              <Cdtr><Nm>Parcours Recouvrement SRL</Nm></Cdtr>
            </RltdPties>
            <RltdAgts><DbtrAgt><FinInstnId><BIC>GKCCBEBB</BIC></FinInstnId></DbtrAgt></RltdAgts>
            <RmtInf>
              <Strd>
                <CdtrRefInf>
                  <Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry><Issr>BBA</Issr></Tp>
                  <Ref>+++123/4567/89002+++</Ref>
                </CdtrRefInf>
              </Strd>
            </RmtInf>
          </TxDtls>
        </NtryDtls>
      </Ntry>
      <Ntry>
        <Amt Ccy="EUR">45.00</Amt>
        <CdtDbtInd>DBIT</CdtDbtInd>
        <Sts>BOOK</Sts>
        <BookgDt><DtTm>2025-03-03T10:15:00+01:00</DtTm></BookgDt>
        <ValDt><Dt>2025-03-04</Dt></ValDt>
        <AcctSvcrRef>2025030300001235</AcctSvcrRef>
        <BkTxCd>
          <Domn><Cd>PMNT</Cd><Fmly><Cd>IDDT</Cd><SubFmlyCd>ESDD</SubFmlyCd></Fmly></Domn>
        </BkTxCd>
        <NtryDtls>
          <TxDtls>
            <Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs>
            <RltdPties>
              <Cdtr><Nm>Proximus SA</Nm></Cdtr>
              <CdtrAcct><Id><IBAN>BE43068999999501</IBAN></Id></CdtrAcct>
            </RltdPties>
            <RmtInf>
              <Ustrd>Facture 2025/0042 </Ustrd>
              <Ustrd> Client 77001</Ustrd>
            </RmtInf>
          </TxDtls>
        </NtryDtls>
      </Ntry>
      <Ntry>
        <Amt Ccy="EUR">300.00</Amt>
        <CdtDbtInd>CRDT</CdtDbtInd>
        <Sts>BOOK</Sts>
        <BookgDt><Dt>2025-03-03</Dt></BookgDt>
        <ValDt><Dt>2025-03-03</Dt></ValDt>
        <AcctSvcrRef>2025030300001240</AcctSvcrRef>
        <BkTxCd>
          <Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn>
        </BkTxCd>
        <NtryDtls>
          <Btch><NbOfTxs>3</NbOfTxs></Btch>
          <TxDtls>
            <AmtDtls><TxAmt><Amt Ccy="EUR">100.00</Amt></TxAmt></AmtDtls>
            <RltdPties>
              <Dbtr><Nm>Sofie Claes</Nm></Dbtr>
              <DbtrAcct><Id><IBAN>BE62510007547061</IBAN></Id></DbtrAcct>
            </RltdPties>
            <RmtInf><Strd><CdtrRefInf><Ref>+++987/6543/21009+++</Ref></CdtrRefInf></Strd></RmtInf>
          </TxDtls>
          <TxDtls>
            <AmtDtls><TxAmt><Amt Ccy="EUR">150.00</Amt></TxAmt></AmtDtls>
            <RltdPties><Dbtr><Nm>Pieter de Vries</Nm></Dbtr>
              <DbtrAcct><Id><IBAN>NL91ABNA0417164300</IBAN></Id></DbtrAcct></RltdPties>
            <RmtInf>
              <Strd>
                <CdtrRefInf>
                  <Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry><Issr>ISO</Issr></Tp>
                  <Ref>RF18 5390 0754 7034</Ref>
                </CdtrRefInf>
              </Strd>
            </RmtInf>
          </TxDtls>
          <TxDtls>
            <AmtDtls><TxAmt><Amt Ccy="EUR">50.00</Amt></TxAmt></AmtDtls>
            <RltdPties><Dbtr><Nm>Luc Maes</Nm></Dbtr></RltdPties>
            <RmtInf><Strd><CdtrRefInf><Ref>***555/0001/23455***</Ref></CdtrRefInf></Strd></RmtInf>
          </TxDtls>
        </NtryDtls>
      </Ntry>
      <Ntry>
        <Amt Ccy="EUR">80.00</Amt>
        <CdtDbtInd>DBIT</CdtDbtInd>
        <RvslInd>true</RvslInd>
        <Sts>BOOK</Sts>
        <BookgDt><Dt>2025-03-03</Dt></BookgDt>
        <AcctSvcrRef>2025030300001251</AcctSvcrRef>
        <BkTxCd><Prtry><Cd>NTRF+</Cd><Issr>KBC</Issr></Prtry></BkTxCd>
        <NtryDtls>
          <TxDtls>
            <Refs><EndToEndId>DUBOIS-0007</EndToEndId></Refs>
            <RltdPties>
              <Dbtr><Nm>Marie Dubois</Nm></Dbtr>
              <DbtrAcct><Id><IBAN>BE62510007547061</IBAN></Id></DbtrAcct>
            </RltdPties>
            <RmtInf><Ustrd>Terugstorting / remboursement</Ustrd></RmtInf>
          </TxDtls>
        </NtryDtls>
      </Ntry>
      <Ntry>
        <NtryRef>NR-5</NtryRef>
        <Amt Ccy="EUR">10</Amt>
        <CdtDbtInd>CRDT</CdtDbtInd>
        <Sts>BOOK</Sts>
        <BookgDt><Dt>2025-03-03</Dt></BookgDt>
        <BkTxCd/>
      </Ntry>
      <Ntry>
        <Amt Ccy="EUR">999.99</Amt>
        <CdtDbtInd>CRDT</CdtDbtInd>
        <Sts>PDNG</Sts>
        <BookgDt><Dt>2025-03-04</Dt></BookgDt>
        <AcctSvcrRef>2025030400000001</AcctSvcrRef>
        <BkTxCd/>
      </Ntry>
    </Stmt>
  </BkToCstmrStmt>
</Document>
"""

# Version 08: Party40Choice (Dbtr/Pty/Nm), Sts/Cd, a statement without its own CreDtTm nor
# account currency, a previous-closing balance as opening, and a batch of mixed signs.
CAMT_08 = """<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">
<BkToCstmrStmt>
<GrpHdr><MsgId>BNPPF-20250304-0001</MsgId><CreDtTm>2025-03-04T05:00:00Z</CreDtTm></GrpHdr>
<Stmt>
<Id>STMT-20250303-1</Id>
<ElctrncSeqNb>62</ElctrncSeqNb>
<Acct><Id><IBAN>BE62510007547061</IBAN></Id><Nm>Collections</Nm></Acct>
<Bal><Tp><CdOrPrtry><Cd>PRCD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">20.00</Amt>
<CdtDbtInd>DBIT</CdtDbtInd><Dt><Dt>2025-03-02</Dt></Dt></Bal>
<Bal><Tp><CdOrPrtry><Cd>CLAV</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">70.00</Amt>
<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2025-03-03</Dt></Dt></Bal>
<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">50.00</Amt>
<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2025-03-03</Dt></Dt></Bal>
<Ntry>
<Amt Ccy="EUR">99.99</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>
<BookgDt><DtTm>2025-03-03T08:01:02.5+01:00</DtTm></BookgDt><ValDt><Dt>2025-03-03</Dt></ValDt>
<AcctSvcrRef>BNP-778899</AcctSvcrRef>
<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>SDVA</SubFmlyCd></Fmly></Domn></BkTxCd>
<NtryDtls><TxDtls>
<Refs><EndToEndId>DJ-2025-03</EndToEndId><UETR>0f8a2a3e-8c65-4f1a-9a55-7d5b0c1b6a10</UETR></Refs>
<Amt Ccy="EUR">99.99</Amt><CdtDbtInd>CRDT</CdtDbtInd>
<RltdPties>
<Dbtr><Pty><Nm>Dennis Janssens</Nm><PstlAdr><Ctry>BE</Ctry></PstlAdr></Pty></Dbtr>
<DbtrAcct><Id><IBAN>NL91ABNA0417164300</IBAN></Id></DbtrAcct>
<Cdtr><Pty><Nm>Parcours</Nm></Pty></Cdtr>
</RltdPties>
<RmtInf><Ustrd>Payment of file 42</Ustrd>
<Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry><Issr>BBA</Issr></Tp>
<Ref>020/2503/00178</Ref></CdtrRefInf></Strd></RmtInf>
</TxDtls></NtryDtls>
</Ntry>
<Ntry>
<Amt Ccy="EUR">70.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>
<BookgDt><Dt>2025-03-03</Dt></BookgDt>
<AcctSvcrRef>BNP-778900</AcctSvcrRef>
<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RDDT</Cd><SubFmlyCd>ESDD</SubFmlyCd></Fmly></Domn></BkTxCd>
<NtryDtls>
<TxDtls><Refs><EndToEndId>SDD-1</EndToEndId></Refs><Amt Ccy="EUR">100.00</Amt>
<CdtDbtInd>CRDT</CdtDbtInd>
<RltdPties><Dbtr><Pty><Nm>Anna Wouters</Nm></Pty></Dbtr></RltdPties></TxDtls>
<TxDtls><Refs><EndToEndId>SDD-2</EndToEndId></Refs><Amt Ccy="EUR">30.00</Amt>
<CdtDbtInd>DBIT</CdtDbtInd>
<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RDDT</Cd><SubFmlyCd>UPDD</SubFmlyCd></Fmly></Domn></BkTxCd>
<RltdPties><Dbtr><Pty><Nm>Bart Jacobs</Nm></Pty></Dbtr>
<Cdtr><Pty><Nm>Parcours</Nm></Pty></Cdtr></RltdPties></TxDtls>
</NtryDtls>
</Ntry>
<Ntry>
<Amt Ccy="EUR">99.99</Amt><CdtDbtInd>DBIT</CdtDbtInd><RvslInd>1</RvslInd><Sts><Cd>BOOK</Cd></Sts>
<BookgDt><Dt>2025-03-03</Dt></BookgDt>
<AcctSvcrRef>BNP-778901</AcctSvcrRef>
<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn></BkTxCd>
<NtryDtls><TxDtls>
<RltdPties><Dbtr><Pty><Nm>Dennis Janssens</Nm></Pty></Dbtr>
<Cdtr><Pty><Nm>Parcours</Nm></Pty></Cdtr></RltdPties>
</TxDtls></NtryDtls>
</Ntry>
</Stmt>
</BkToCstmrStmt>
</Document>
"""

# Version 04 (TxDtls/Amt mandatory): two statements of two accounts in one file.
CAMT_04 = """<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.04">
  <BkToCstmrStmt>
    <GrpHdr><MsgId>ING-1</MsgId><CreDtTm>2025-01-31T22:00:00</CreDtTm></GrpHdr>
    <Stmt>
      <Id>ING-EUR-31</Id>
      <CreDtTm>2025-01-31T22:00:00</CreDtTm>
      <Acct><Id><IBAN>BE71096123456769</IBAN></Id><Ccy>EUR</Ccy></Acct>
      <Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">0</Amt>
        <CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2025-01-31</Dt></Dt></Bal>
      <Ntry>
        <Amt Ccy="EUR">42.10</Amt>
        <CdtDbtInd>CRDT</CdtDbtInd>
        <Sts>BOOK</Sts>
        <BookgDt><Dt>2025-01-31</Dt></BookgDt>
        <AcctSvcrRef>ING-31-0001</AcctSvcrRef>
        <BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn></BkTxCd>
        <NtryDtls><TxDtls>
          <Amt Ccy="EUR">42.10</Amt><CdtDbtInd>CRDT</CdtDbtInd>
          <RltdPties><Dbtr><Nm>Koen Willems</Nm></Dbtr></RltdPties>
          <RmtInf><Strd><CdtrRefInf><Ref>***000/0004/24271***</Ref></CdtrRefInf></Strd></RmtInf>
        </TxDtls></NtryDtls>
      </Ntry>
    </Stmt>
    <Stmt>
      <Id>ING-USD-31</Id>
      <CreDtTm>2025-01-31T22:00:00</CreDtTm>
      <Acct><Id><IBAN>BE43068999999501</IBAN></Id><Ccy>USD</Ccy></Acct>
      <Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="USD">12.34</Amt>
        <CdtDbtInd>DBIT</CdtDbtInd><Dt><Dt>2025-01-31</Dt></Dt></Bal>
      <Ntry>
        <Amt Ccy="USD">12.34</Amt>
        <CdtDbtInd>DBIT</CdtDbtInd>
        <Sts>BOOK</Sts>
        <BookgDt><Dt>2025-01-31</Dt></BookgDt>
        <AcctSvcrRef>ING-31-USD-1</AcctSvcrRef>
        <BkTxCd><Prtry><Cd>FEES</Cd></Prtry></BkTxCd>
      </Ntry>
    </Stmt>
  </BkToCstmrStmt>
</Document>
"""


def _error(document: str | bytes) -> StatementError:
    with pytest.raises(StatementError) as caught:
        parse_camt(document)
    return caught.value


# -- reading ---------------------------------------------------------------------------------


def test_version_02_statement_header_and_balances() -> None:
    (statement,) = parse_camt(CAMT_02)
    assert statement.format == "camt.053.001.02"
    assert statement.account_iban == "BE68539007547034"
    assert statement.statement_id == "2025-061-BE68539007547034"
    assert statement.created_on == D(2025, 3, 4)
    assert statement.currency == "EUR"
    assert statement.opening_minor == 152030
    assert statement.closing_minor == 183080
    # The booked lines add up from the opening to the closing balance.
    total = sum(line.amount_minor for line in statement.lines)
    assert statement.opening_minor + total == statement.closing_minor


def test_version_02_credit_with_ogm_in_plus_format() -> None:
    line = parse_camt(CAMT_02)[0].lines[0]
    assert line == StatementLine(
        ref="2025030300001234",
        booked_on=D(2025, 3, 3),
        amount_minor=12550,
        currency="EUR",
        value_on=D(2025, 3, 3),
        structured="123456789002",
        counterparty_name="Jan Peeters",
        counterparty_iban="BE71096123456769",
        end_to_end_id="PEETERS-INV-0042",
        bank_code="PMNT/RCDT/ESCT",
    )


def test_version_02_debit_names_the_creditor_and_joins_free_text() -> None:
    line = parse_camt(CAMT_02)[0].lines[1]
    assert line.amount_minor == -4500
    assert line.booked_on == D(2025, 3, 3)  # the date part of BookgDt/DtTm
    assert line.value_on == D(2025, 3, 4)
    assert line.text == "Facture 2025/0042 Client 77001"
    assert line.structured is None
    assert line.counterparty_name == "Proximus SA"
    assert line.counterparty_iban == "BE43068999999501"
    assert line.end_to_end_id is None  # NOTPROVIDED
    assert line.bank_code == "PMNT/IDDT/ESDD"


def test_version_02_batch_entry_gives_one_line_per_transaction() -> None:
    lines = parse_camt(CAMT_02)[0].lines[2:5]
    assert [line.ref for line in lines] == [
        "2025030300001240/1",
        "2025030300001240/2",
        "2025030300001240/3",
    ]
    assert [line.amount_minor for line in lines] == [10000, 15000, 5000]
    assert [line.structured for line in lines] == [
        "987654321009",
        "RF18539007547034",
        "555000123455",
    ]
    assert [line.counterparty_name for line in lines] == [
        "Sofie Claes",
        "Pieter de Vries",
        "Luc Maes",
    ]
    assert [line.counterparty_iban for line in lines] == [
        "BE62510007547061",
        "NL91ABNA0417164300",
        None,
    ]
    assert all(line.bank_code == "PMNT/RCDT/ESCT" for line in lines)


def test_version_02_reversal_of_a_credit_keeps_the_original_payer() -> None:
    line = parse_camt(CAMT_02)[0].lines[5]
    assert line.reversal is True
    assert line.amount_minor == -8000
    assert line.counterparty_name == "Marie Dubois"
    assert line.counterparty_iban == "BE62510007547061"
    assert line.bank_code == "NTRF+"
    assert line.value_on is None


def test_entry_ref_falls_back_to_ntry_ref_and_pending_entries_are_left_out() -> None:
    lines = parse_camt(CAMT_02)[0].lines
    assert lines[-1].ref == "NR-5"
    assert lines[-1].amount_minor == 1000
    assert lines[-1].bank_code is None
    assert len(lines) == 7  # the PDNG entry is not a booking
    assert "2025030400000001" not in {line.ref for line in lines}


def test_version_08_pending_status_code_is_left_out() -> None:
    pending = CAMT_08.replace("<Sts><Cd>BOOK</Cd></Sts>", "<Sts><Cd>PDNG</Cd></Sts>", 1)
    refs = [line.ref for line in parse_camt(pending)[0].lines]
    assert refs == ["BNP-778900/1", "BNP-778900/2", "BNP-778901"]


def test_version_08_party_choice_status_code_and_fallbacks() -> None:
    (statement,) = parse_camt(CAMT_08)
    assert statement.format == "camt.053.001.08"
    assert statement.created_on == D(2025, 3, 4)  # GrpHdr/CreDtTm: the statement has none
    assert statement.currency == "EUR"  # from the first balance: Acct has no Ccy
    assert statement.opening_minor == -2000  # PRCD, debit
    assert statement.closing_minor == 5000  # CLBD, not the CLAV before it
    first = statement.lines[0]
    assert first.counterparty_name == "Dennis Janssens"
    assert first.counterparty_iban == "NL91ABNA0417164300"
    assert first.structured == "020250300178"
    assert first.text == "Payment of file 42"
    assert first.booked_on == D(2025, 3, 3)
    assert first.bank_code == "PMNT/RCDT/SDVA"


def test_version_08_batch_with_signed_transactions_and_own_bank_codes() -> None:
    lines = parse_camt(CAMT_08)[0].lines[1:3]
    assert [line.ref for line in lines] == ["BNP-778900/1", "BNP-778900/2"]
    assert [line.amount_minor for line in lines] == [10000, -3000]
    assert [line.end_to_end_id for line in lines] == ["SDD-1", "SDD-2"]
    # A debit names the creditor side; the transaction's own code wins over the entry's.
    assert [line.counterparty_name for line in lines] == ["Anna Wouters", "Parcours"]
    assert [line.bank_code for line in lines] == ["PMNT/RDDT/ESDD", "PMNT/RDDT/UPDD"]


def test_version_08_reversed_credit_names_its_debtor() -> None:
    line = parse_camt(CAMT_08)[0].lines[3]
    assert line.reversal is True
    assert line.amount_minor == -9999
    assert line.counterparty_name == "Dennis Janssens"


def test_version_04_file_with_two_statements_of_two_currencies() -> None:
    first, second = parse_camt(CAMT_04)
    assert first.format == second.format == "camt.053.001.04"
    assert (first.account_iban, first.currency, first.opening_minor) == (
        "BE71096123456769",
        "EUR",
        0,
    )
    assert first.closing_minor is None
    assert first.lines[0].structured == "000000424271"
    assert first.lines[0].counterparty_name == "Koen Willems"
    assert (second.account_iban, second.currency, second.closing_minor) == (
        "BE43068999999501",
        "USD",
        -1234,
    )
    assert second.lines[0].amount_minor == -1234
    assert second.lines[0].bank_code == "FEES"


def test_every_kind_of_source_gives_the_same_statements(tmp_path: Path) -> None:
    path = tmp_path / "statement.xml"
    path.write_bytes(CAMT_02.encode())
    expected = parse_camt(CAMT_02)
    assert parse_camt(CAMT_02.encode()) == expected
    assert parse_camt(path) == expected
    assert parse_camt(io.BytesIO(CAMT_02.encode())) == expected


def test_text_with_a_latin_1_declaration_keeps_its_accents() -> None:
    document = CAMT_02.replace('encoding="UTF-8"', 'encoding="ISO-8859-1"').replace(
        "Jan Peeters", "Frédérique Hüsch"
    )
    assert parse_camt(document)[0].lines[0].counterparty_name == "Frédérique Hüsch"
    assert (
        parse_camt(document.encode("latin-1"))[0].lines[0].counterparty_name == "Frédérique Hüsch"
    )
    # Text decoded by a reader that kept the byte order mark.
    assert parse_camt("\ufeff" + document)[0].lines[0].counterparty_name == "Frédérique Hüsch"


def test_entries_without_any_reference_get_distinct_stable_digests() -> None:
    anonymous = CAMT_04.replace("<AcctSvcrRef>ING-31-0001</AcctSvcrRef>", "")
    twice = anonymous.replace(
        "    </Stmt>\n    <Stmt>\n      <Id>ING-USD-31",
        anonymous[anonymous.index("      <Ntry>") : anonymous.index("    </Stmt>")]
        + "    </Stmt>\n    <Stmt>\n      <Id>ING-USD-31",
        1,
    )
    first, second = parse_camt(twice)[0].lines
    assert first.ref.startswith("digest:")
    assert second.ref == f"{first.ref}#2"  # the same content twice is still two bookings
    assert parse_camt(twice)[0].lines == [first, second]  # and the same on a re-import
    # Layout is not content: the same entry on one line has the same digest.
    compact = "\n".join(part.strip() for part in anonymous.splitlines())
    assert parse_camt(compact)[0].lines[0].ref == parse_camt(anonymous)[0].lines[0].ref
    # The statement id is part of it.
    other = anonymous.replace("<Id>ING-EUR-31</Id>", "<Id>ING-EUR-32</Id>")
    assert parse_camt(other)[0].lines[0].ref != first.ref


def test_external_entities_are_not_resolved(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    document = CAMT_04.replace(
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<!DOCTYPE Document [<!ENTITY leak SYSTEM "file://{secret}">]>',
    ).replace("<Nm>Koen Willems</Nm>", "<Nm>Koen &leak;</Nm>")
    line = parse_camt(document)[0].lines[0]
    assert "TOP-SECRET" not in repr(line)


# -- refusing --------------------------------------------------------------------------------


def test_missing_amount_names_the_entry_its_line_and_the_element() -> None:
    error = _error(CAMT_02.replace('<Amt Ccy="EUR">45.00</Amt>', ""))
    assert error.where is not None
    assert error.where.startswith("entry 2 (line ")
    assert error.field == "Amt"
    assert str(error).endswith("Amt: missing")


def test_missing_currency_is_named() -> None:
    error = _error(CAMT_02.replace('<Amt Ccy="EUR">45.00</Amt>', "<Amt>45.00</Amt>"))
    assert error.field == "Amt/@Ccy"
    assert "entry 2" in str(error)


def test_three_decimals_for_euro_are_refused_not_rounded() -> None:
    error = _error(CAMT_02.replace('<Amt Ccy="EUR">45.00</Amt>', '<Amt Ccy="EUR">45.005</Amt>'))
    assert error.field == "Amt"
    assert "45.005 has 3 decimals but EUR has 2" in str(error)
    # Trailing zeros are not decimals: 45.000 is 45.00.
    fine = CAMT_02.replace('<Amt Ccy="EUR">45.00</Amt>', '<Amt Ccy="EUR">45.000</Amt>')
    assert parse_camt(fine)[0].lines[1].amount_minor == -4500


@pytest.mark.parametrize(
    ("old", "new", "field", "message"),
    [
        ("<CdtDbtInd>DBIT</CdtDbtInd>", "<CdtDbtInd>DEBIT</CdtDbtInd>", "CdtDbtInd", "DEBIT"),
        ("<CdtDbtInd>DBIT</CdtDbtInd>", "", "CdtDbtInd", "missing"),
        (
            "<BookgDt><DtTm>2025-03-03T10:15:00+01:00</DtTm></BookgDt>",
            "",
            "BookgDt",
            "missing",
        ),
        (
            "<BookgDt><DtTm>2025-03-03T10:15:00+01:00</DtTm></BookgDt>",
            "<BookgDt><DtTm>03/03/2025</DtTm></BookgDt>",
            "BookgDt/DtTm",
            "not an ISO date",
        ),
        ('<Amt Ccy="EUR">45.00</Amt>', '<Amt Ccy="EUR">-45.00</Amt>', "Amt", "not an amount"),
        ('<Amt Ccy="EUR">45.00</Amt>', '<Amt Ccy="ZZZ">45.00</Amt>', "Amt/@Ccy", "ZZZ"),
    ],
)
def test_bad_entry_fields_are_named(old: str, new: str, field: str, message: str) -> None:
    assert CAMT_02.count(old) >= 1
    document = CAMT_02.replace(old, new, 1)
    error = _error(document)
    assert error.field == field
    assert message in str(error)
    assert error.where is not None
    assert error.where.startswith("entry 2 (line ")


def test_batch_transaction_without_an_amount_is_named() -> None:
    document = CAMT_02.replace('<AmtDtls><TxAmt><Amt Ccy="EUR">150.00</Amt></TxAmt></AmtDtls>', "")
    error = _error(document)
    assert error.where is not None
    assert error.where.startswith("entry 3 ")
    assert error.field == "NtryDtls/TxDtls[2]/Amt"


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("<Id>2025-061-BE68539007547034</Id>", "", "Id"),
        (
            "<Id><IBAN>BE68539007547034</IBAN></Id>",
            "<Id><Othr><Id>1</Id></Othr></Id>",
            "Acct/Id/IBAN",
        ),
        ('<Amt Ccy="EUR">1520.30</Amt>', "", "Bal[1]/Amt"),
        ('<Amt Ccy="EUR">1830.80</Amt>', '<Amt Ccy="EUR">1830.801</Amt>', "Bal[2]/Amt"),
    ],
)
def test_bad_statement_fields_are_named(old: str, new: str, field: str) -> None:
    error = _error(CAMT_02.replace(old, new, 1))
    assert error.field == field
    assert error.where is not None
    assert error.where.startswith("statement 1 (line ")


def test_statement_without_any_date_is_refused() -> None:
    document = CAMT_04.replace("<CreDtTm>2025-01-31T22:00:00</CreDtTm>", "")
    error = _error(document)
    assert error.field == "CreDtTm"


@pytest.mark.parametrize(
    ("namespace", "message"),
    [
        ("camt.052.001.02", "camt.052.001.02 is an unsupported message, not a bank statement"),
        ("camt.053.001.01", "camt.053.001.01 is an unsupported version"),
        ("camt.053.001.09", "camt.053.001.09 is an unsupported version"),
        ("camt.053.001.13", "camt.053.001.13 is an unsupported version"),
    ],
)
def test_unsupported_versions_and_messages_are_refused(namespace: str, message: str) -> None:
    document = CAMT_04.replace("camt.053.001.04", namespace)
    assert message in str(_error(document))


def test_a_document_outside_iso_20022_is_refused() -> None:
    error = _error(CAMT_04.replace("urn:iso:std:iso:20022:tech:xsd:camt.053.001.04", "urn:bank"))
    assert "not an ISO 20022 Document" in str(error)
    assert "not an ISO 20022" in str(_error("<Statement><Ntry/></Statement>"))


@pytest.mark.parametrize("cut", [0.3, 0.5, 0.9, 0.99])
def test_a_truncated_file_is_refused_whole(cut: float) -> None:
    data = CAMT_02.encode()[: int(len(CAMT_02) * cut)]
    error = _error(data)
    assert "malformed or truncated" in str(error)
    assert error.where is not None
    assert error.where.startswith("line ")


def test_truncation_error_says_how_far_reading_got() -> None:
    data = CAMT_02[: CAMT_02.index("<AcctSvcrRef>2025030300001251")]
    assert "after entry 3" in str(_error(data))


def test_malformed_xml_names_the_line() -> None:
    error = _error(CAMT_02.replace("</Cdtr>", "</Creditor>", 1))
    assert "malformed" in str(error)
    line = CAMT_02[: CAMT_02.index("</Cdtr>")].count("\n") + 1
    assert error.where is not None
    assert error.where.startswith(f"line {line}")


def test_an_error_in_a_later_statement_returns_nothing_of_the_earlier_one() -> None:
    entry = '<Amt Ccy="USD">12.34</Amt>\n        <CdtDbtInd>DBIT</CdtDbtInd>\n        <Sts>'
    assert CAMT_04.count(entry) == 1
    error = _error(CAMT_04.replace(entry, "<CdtDbtInd>DBIT</CdtDbtInd><Sts>"))
    assert error.where is not None
    assert error.where.startswith("entry 2 ")  # entries count across the file
    assert error.field == "Amt"


def test_empty_documents_are_refused() -> None:
    assert "empty" in str(_error(b""))
    no_statement = (
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>'
        "<GrpHdr><MsgId>1</MsgId><CreDtTm>2025-01-01T00:00:00</CreDtTm></GrpHdr>"
        "</BkToCstmrStmt></Document>"
    )
    assert _error(no_statement).field == "BkToCstmrStmt/Stmt"


# -- writing ---------------------------------------------------------------------------------


def _rf(body: str) -> str:
    """A valid ISO 11649 reference for the body."""
    digits = "".join(str(int(char, 36)) for char in body + "RF00")
    return f"RF{98 - int(digits) % 97:02d}{body}"


def _belgian_iban(bban: int) -> str:
    digits = f"{bban:012d}"
    return f"BE{98 - int(digits + '111400') % 97:02d}{digits}"


words = st.text(
    alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "S")),
    min_size=1,
    max_size=30,
)
texts = st.lists(words, max_size=12).map(" ".join)
names = st.lists(words, min_size=1, max_size=5).map(" ".join)
ibans = st.one_of(
    st.integers(0, 10**12 - 1).map(_belgian_iban),
    st.sampled_from(
        ["NL91ABNA0417164300", "FR1420041010050500013M02606", "DE89370400440532013000"]
    ),
)
structured_references = st.one_of(
    st.integers(0, 10**10 - 1).map(structured_communication_digits),
    st.from_regex(r"[A-Z0-9]{1,21}", fullmatch=True).map(_rf),
)
bank_codes = st.one_of(
    st.none(),
    st.sampled_from(["PMNT/RCDT/ESCT", "PMNT/IDDT/ESDD", "PMNT/RCDT/XBCT", "ACMT/MDOP/CHRG"]),
    st.from_regex(r"[A-Z0-9+]{1,8}", fullmatch=True),
)
days = st.dates(min_value=D(2000, 1, 1), max_value=D(2099, 12, 31))


@st.composite
def statement_lines(draw: st.DrawFn, currency: str) -> list[StatementLine]:
    """Entries of one or several lines; a batch's lines share what an entry holds."""
    lines: list[StatementLine] = []
    for number in range(draw(st.integers(0, 6))):
        size = draw(st.sampled_from([1, 1, 2, 3]))
        booked_on, value_on = draw(days), draw(st.none() | days)
        reversal, bank_code = draw(st.booleans()), draw(bank_codes)
        for position in range(1, size + 1):
            lines.append(
                StatementLine(
                    ref=f"E{number}" if size == 1 else f"B{number}/{position}",
                    booked_on=booked_on,
                    amount_minor=draw(st.integers(-(10**12), 10**12)),
                    currency=currency,
                    value_on=value_on,
                    reversal=reversal,
                    structured=draw(st.none() | structured_references),
                    text=draw(texts),
                    counterparty_name=draw(st.none() | names),
                    counterparty_iban=draw(st.none() | ibans),
                    end_to_end_id=draw(
                        st.none()
                        | st.from_regex(r"[A-Za-z0-9][A-Za-z0-9/\-]{0,34}", fullmatch=True)
                    ),
                    bank_code=bank_code,
                )
            )
    return lines


@st.composite
def statements(draw: st.DrawFn) -> Statement:
    currency = draw(st.sampled_from(["EUR", "EUR", "USD", "JPY"]))
    opening = draw(st.none() | st.integers(-(10**12), 10**12))
    amounts = st.integers(-(10**12), 10**12)
    closing = draw(amounts if opening is None else st.none() | amounts)
    return Statement(
        format="",
        account_iban=draw(ibans),
        statement_id=draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9\-]{0,34}", fullmatch=True)),
        created_on=draw(days),
        currency=currency,
        opening_minor=opening,
        closing_minor=closing,
        lines=draw(statement_lines(currency)),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(statements(), min_size=1, max_size=3), st.sampled_from(SUPPORTED_VERSIONS))
def test_parse_of_write_gives_back_the_statements(written: list[Statement], version: str) -> None:
    expected = [dataclasses.replace(statement, format=version) for statement in written]
    assert parse_camt(write_camt(written, version)) == expected


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(statements(), st.sampled_from(SUPPORTED_VERSIONS), st.data())
def test_any_truncation_of_a_written_file_is_refused(
    statement: Statement, version: str, data: st.DataObject
) -> None:
    document = write_camt([statement], version)
    cut = data.draw(st.integers(0, document.rindex(b"</Document>") - 1))
    with pytest.raises(StatementError):
        parse_camt(document[:cut])


def _line(**changes: object) -> StatementLine:
    line = StatementLine(
        ref="R1",
        booked_on=D(2025, 3, 3),
        amount_minor=1000,
        currency="EUR",
        counterparty_name="Jan Peeters",
        counterparty_iban="BE71096123456769",
    )
    return dataclasses.replace(line, **changes)  # type: ignore[arg-type]


def _statement(*lines: StatementLine) -> Statement:
    return Statement(
        format="camt.053.001.08",
        account_iban="BE68539007547034",
        statement_id="S1",
        created_on=D(2025, 3, 3),
        currency="EUR",
        opening_minor=0,
        closing_minor=sum(line.amount_minor for line in lines),
        lines=list(lines),
    )


def test_party_structure_follows_the_version() -> None:
    statement = _statement(_line())
    old = write_camt([statement], "camt.053.001.02").decode()
    new = write_camt([statement], "camt.053.001.08").decode()
    assert "<Dbtr><Nm>Jan Peeters</Nm></Dbtr>" in old
    assert "<Dbtr><Pty><Nm>Jan Peeters</Nm></Pty></Dbtr>" in new
    assert "<Sts>BOOK</Sts>" in old
    assert "<Sts><Cd>BOOK</Cd></Sts>" in new


def test_batch_lines_are_written_as_one_entry() -> None:
    statement = _statement(_line(ref="X/1"), _line(ref="X/2", amount_minor=-300))
    document = write_camt([statement], "camt.053.001.08").decode()
    assert document.count("<Ntry>") == 1
    assert document.count("<TxDtls>") == 2
    assert '<Amt Ccy="EUR">7.00</Amt><CdtDbtInd>CRDT</CdtDbtInd>' in document
    # Version 02 has no sign per transaction: mixed signs stay separate entries.
    old = write_camt([statement], "camt.053.001.02").decode()
    assert old.count("<Ntry>") == 2
    assert parse_camt(old)[0].lines == statement.lines


def test_writer_escapes_markup_in_text() -> None:
    statement = _statement(_line(text="<b>Tom & Jerry</b>", counterparty_name="A&B <SRL>"))
    document = write_camt([statement])
    assert b"&lt;b&gt;Tom &amp; Jerry&lt;/b&gt;" in document
    assert parse_camt(document)[0].lines[0].text == "<b>Tom & Jerry</b>"


@pytest.mark.parametrize(
    ("line", "field"),
    [
        (_line(ref="R" * 36), "ref"),
        (_line(end_to_end_id="E" * 36), "end_to_end_id"),
        (_line(text="x" * 141), "text"),
        (_line(counterparty_name="bell\x07"), "counterparty_name"),
        (_line(amount_minor=10**18), "amount_minor"),
    ],
)
def test_writer_refuses_what_the_format_cannot_carry(line: StatementLine, field: str) -> None:
    statement = dataclasses.replace(_statement(_line(ref="OK"), line), closing_minor=0)
    with pytest.raises(StatementError) as caught:
        write_camt([statement])
    assert caught.value.field == field
    assert caught.value.where == "statement 1, line 2"


def test_writer_names_a_balance_it_cannot_write() -> None:
    statement = dataclasses.replace(_statement(), opening_minor=-(10**18))
    with pytest.raises(StatementError) as caught:
        write_camt([statement])
    assert (caught.value.where, caught.value.field) == ("statement 1", "opening_minor")


def test_writer_needs_a_balance_and_a_known_version() -> None:
    statement = dataclasses.replace(_statement(), opening_minor=None, closing_minor=None)
    with pytest.raises(StatementError, match="at least one balance"):
        write_camt([statement])
    with pytest.raises(ValueError, match=r"camt\.053\.001\.09"):
        write_camt([_statement()], "camt.053.001.09")
    with pytest.raises(StatementError, match="at least one statement"):
        write_camt([])
