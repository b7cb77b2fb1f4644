//! Ledger exports: CSV, and an XLSX workbook for the offices that work in spreadsheets — one
//! sheet of problems (headers in Chinese and English, dates as dates, the header row frozen)
//! and one sheet of totals per county.

use std::collections::BTreeMap;

use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
use time::{Date, OffsetDateTime};

use crate::store::LedgerEntry;

const HEADERS: [(&str, &str); 16] = [
    ("问题编号", "Problem"),
    ("轮次", "Round"),
    ("城市", "City"),
    ("区县", "County"),
    ("责任单位", "Responsible"),
    ("类别", "Category"),
    ("严重程度", "Severity"),
    ("点位", "Site"),
    ("问题描述", "Description"),
    ("督办单号", "Handover sheet"),
    ("交办日期", "Handed over"),
    ("原整改期限", "Original deadline"),
    ("整改期限", "Deadline"),
    ("状态", "Status"),
    ("逾期", "Overdue"),
    ("回潮", "Rebound of"),
];

pub fn csv(rows: &[LedgerEntry]) -> String {
    let header: Vec<String> = HEADERS.iter().map(|(zh, en)| format!("{zh} {en}")).collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut out = shared::csv::line(&header);
    for r in rows {
        out.push_str(&shared::csv::line(&[
            &r.problem_id.to_string(),
            &r.round_id,
            &r.city_code,
            r.county_code.as_deref().unwrap_or(""),
            &r.jurisdiction,
            &r.category,
            &r.severity,
            &r.site_name,
            &r.description,
            r.handover_no.as_deref().unwrap_or(""),
            &r.assigned_at.map(|t| shared::clock::shanghai_date(t).to_string()).unwrap_or_default(),
            &r.original_deadline.map(|d| d.to_string()).unwrap_or_default(),
            &r.deadline.map(|d| d.to_string()).unwrap_or_default(),
            &r.status,
            if r.overdue { "yes" } else { "" },
            &r.rebound_of.map(|id| id.to_string()).unwrap_or_default(),
        ]));
    }
    out
}

fn excel_date(d: Date) -> Result<ExcelDateTime, rust_xlsxwriter::XlsxError> {
    ExcelDateTime::from_ymd(d.year() as u16, d.month() as u8, d.day())
}

fn excel_day(t: OffsetDateTime) -> Result<ExcelDateTime, rust_xlsxwriter::XlsxError> {
    excel_date(shared::clock::shanghai_date(t))
}

/// The workbook, as bytes.
pub fn xlsx(rows: &[LedgerEntry]) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    let mut workbook = Workbook::new();
    let bold = Format::new().set_bold();
    let date = Format::new().set_num_format("yyyy-mm-dd");

    let sheet = workbook.add_worksheet();
    sheet.set_name("问题台账 Ledger")?;
    for (col, (zh, en)) in HEADERS.iter().enumerate() {
        sheet.write_string_with_format(0, col as u16, format!("{zh}\n{en}"), &bold)?;
    }
    sheet.set_freeze_panes(1, 0)?;
    for (i, r) in rows.iter().enumerate() {
        let row = i as u32 + 1;
        sheet.write_string(row, 0, r.problem_id.to_string())?;
        sheet.write_string(row, 1, &r.round_id)?;
        sheet.write_string(row, 2, &r.city_code)?;
        sheet.write_string(row, 3, r.county_code.as_deref().unwrap_or(""))?;
        sheet.write_string(row, 4, &r.jurisdiction)?;
        sheet.write_string(row, 5, &r.category)?;
        sheet.write_string(row, 6, &r.severity)?;
        sheet.write_string(row, 7, &r.site_name)?;
        sheet.write_string(row, 8, &r.description)?;
        sheet.write_string(row, 9, r.handover_no.as_deref().unwrap_or(""))?;
        if let Some(t) = r.assigned_at {
            sheet.write_datetime_with_format(row, 10, excel_day(t)?, &date)?;
        }
        if let Some(d) = r.original_deadline {
            sheet.write_datetime_with_format(row, 11, excel_date(d)?, &date)?;
        }
        if let Some(d) = r.deadline {
            sheet.write_datetime_with_format(row, 12, excel_date(d)?, &date)?;
        }
        sheet.write_string(row, 13, &r.status)?;
        sheet.write_boolean(row, 14, r.overdue)?;
        sheet.write_string(row, 15, r.rebound_of.map(|id| id.to_string()).unwrap_or_default())?;
    }
    sheet.autofit();

    // Totals per responsible county (or city, for problems with no county).
    let mut totals: BTreeMap<&str, (u32, u32, u32)> = BTreeMap::new();
    for r in rows {
        let t = totals.entry(r.jurisdiction.as_str()).or_default();
        t.0 += 1;
        t.1 += u32::from(r.status == "closed");
        t.2 += u32::from(r.overdue && r.status != "closed");
    }
    let summary = workbook.add_worksheet();
    summary.set_name("各县汇总 By county")?;
    for (col, title) in
        ["责任单位 Responsible", "问题 Problems", "已销号 Closed", "逾期未销号 Overdue open"].iter().enumerate()
    {
        summary.write_string_with_format(0, col as u16, *title, &bold)?;
    }
    summary.set_freeze_panes(1, 0)?;
    for (i, (jurisdiction, (all, closed, overdue))) in totals.iter().enumerate() {
        let row = i as u32 + 1;
        summary.write_string(row, 0, *jurisdiction)?;
        summary.write_number(row, 1, *all)?;
        summary.write_number(row, 2, *closed)?;
        summary.write_number(row, 3, *overdue)?;
    }
    summary.autofit();
    workbook.save_to_buffer()
}
