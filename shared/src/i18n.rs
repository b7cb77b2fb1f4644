//! The zh-CN and English words of every page and notice, in one place: pages say
//! `lang.t("中文", "English")` for their own sentences and take the domain's names (statuses,
//! categories, cities, roles) from here.

use crate::reference;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    pub fn from_query(lang: Option<&str>) -> Self {
        match lang {
            Some(l) if l.starts_with("en") => Lang::En,
            _ => Lang::Zh,
        }
    }

    pub fn t<'a>(self, zh: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }

    pub fn code(self) -> &'static str {
        self.t("zh-CN", "en")
    }

    /// The query suffix that keeps the language on links.
    pub fn suffix(self, first: bool) -> &'static str {
        match (self, first) {
            (Lang::Zh, _) => "",
            (Lang::En, true) => "?lang=en",
            (Lang::En, false) => "&lang=en",
        }
    }
}

pub fn status_name(status: &str, lang: Lang) -> &'static str {
    let (zh, en) = match status {
        "reported" => ("已发现", "found"),
        "assigned" => ("已交办", "handed over"),
        "acknowledged" => ("已签收", "acknowledged"),
        "rectification_reported" => ("已报整改", "rectification reported"),
        "reopened" => ("重新整改", "reopened"),
        "closed" => ("已销号", "closed"),
        "rerouted" => ("改派", "rerouted"),
        "extended" => ("延期", "extended"),
        "progressed" => ("整改进展", "progress"),
        "overdue" => ("逾期", "overdue"),
        "typical_case" => ("典型案例", "typical case"),
        "retracted" => ("撤回", "retracted"),
        "corrected" => ("更正", "corrected"),
        "withdrawn" => ("撤下", "withdrawn"),
        _ => ("未知", "unknown"),
    };
    lang.t(zh, en)
}

/// A status as people read it on the workbench, which has a few more than the public page.
pub fn ledger_status_name(status: &str, lang: Lang) -> &'static str {
    match status {
        "rectification_reported" | "rectified" => lang.t("已报整改", "rectification reported"),
        "handed_over" => lang.t("已交办", "handed over"),
        other => status_name(other, lang),
    }
}

/// A city or county by its code, in the reader's language (the code itself when unknown).
pub fn jurisdiction_name(code: &str, lang: Lang) -> String {
    reference::city(code).map(|c| lang.t(&c.name_zh, &c.name_en).to_string()).unwrap_or_else(|| code.to_string())
}

/// A category of problem by its code.
pub fn category_name(code: &str, lang: Lang) -> String {
    reference::category(code).map(|c| lang.t(&c.name_zh, &c.name_en).to_string()).unwrap_or_else(|| code.to_string())
}

/// A role as the workbench names it.
pub fn role_name(role: &str, lang: Lang) -> &'static str {
    match role {
        "inspector" => lang.t("检查组成员", "inspector"),
        "local_gov" => lang.t("地方政府", "local government"),
        "verifier" => lang.t("核查人员", "verifier"),
        _ => lang.t("督查办", "campaign office"),
    }
}
