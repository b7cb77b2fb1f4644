//! Reference data: the 39 key cities (GB/T 2260) and the problem categories, read at start from
//! the CSV files in `shared/data/`, and the rules of the administrative codes.

use std::sync::LazyLock;

#[derive(Debug, Clone, serde::Serialize)]
pub struct City {
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    pub province_code: String,
    pub province_zh: String,
    pub province_en: String,
    /// `jjj_2_26` (Beijing–Tianjin–Hebei "2+26") or `fenwei` (Fenwei Plain).
    pub region: String,
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Category {
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
}

fn csv_rows(text: &'static str) -> impl Iterator<Item = Vec<&'static str>> {
    // The reference files hold no quoted fields, so a plain split is the whole parser.
    text.lines().skip(1).filter(|l| !l.trim().is_empty()).map(|l| l.split(',').map(str::trim).collect())
}

static CITIES: LazyLock<Vec<City>> = LazyLock::new(|| {
    csv_rows(include_str!("../data/cities.csv"))
        .map(|f| City {
            code: f[0].into(),
            name_zh: f[1].into(),
            name_en: f[2].into(),
            province_code: f[3].into(),
            province_zh: f[4].into(),
            province_en: f[5].into(),
            region: f[6].into(),
            lat: f[7].parse().expect("cities.csv: lat"),
            lon: f[8].parse().expect("cities.csv: lon"),
        })
        .collect()
});

static CATEGORIES: LazyLock<Vec<Category>> = LazyLock::new(|| {
    csv_rows(include_str!("../data/categories.csv"))
        .map(|f| Category { code: f[0].into(), name_zh: f[1].into(), name_en: f[2].into() })
        .collect()
});

pub fn cities() -> &'static [City] {
    &CITIES
}

pub fn city(code: &str) -> Option<&'static City> {
    CITIES.iter().find(|c| c.code == code)
}

pub fn categories() -> &'static [Category] {
    &CATEGORIES
}

pub fn category(code: &str) -> Option<&'static Category> {
    CATEGORIES.iter().find(|c| c.code == code)
}

fn is_six_digits(code: &str) -> bool {
    code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())
}

/// The province a city or county code belongs to (`130502` → `130000`).
pub fn province_of(code: &str) -> String {
    format!("{}0000", &code[..2.min(code.len())])
}

/// The key city a county code belongs to: the city sharing its first four digits, except in
/// the two municipalities, where every `1101xx` county is Beijing's and every `1201xx` Tianjin's.
pub fn city_of_county(county: &str) -> Option<&'static City> {
    if !is_six_digits(county) || county.ends_with("00") {
        return None;
    }
    let city_code = match &county[..4] {
        "1101" => "110000".to_string(),
        "1201" => "120000".to_string(),
        prefix => format!("{prefix}00"),
    };
    city(&city_code)
}

/// Whether a jurisdiction (a key city or a county) is responsible for `code`: itself, or, for a
/// city, any of its counties.
pub fn jurisdiction_covers(jurisdiction: &str, code: &str) -> bool {
    jurisdiction == code || city_of_county(code).is_some_and(|c| c.code == jurisdiction)
}

/// Whether `code` names a jurisdiction Skyledger knows: a key city or a county of one.
pub fn is_jurisdiction(code: &str) -> bool {
    city(code).is_some() || city_of_county(code).is_some()
}

/// A clean-up register the rounds checked against, and the states its items may be in.
pub struct Register {
    pub code: &'static str,
    pub name_zh: &'static str,
    pub name_en: &'static str,
    pub states: &'static [&'static str],
    /// The states of an item still to be dealt with: the register is at zero when none is.
    pub outstanding: &'static [&'static str],
}

/// The "两散" registers (scattered polluting enterprises, coal boilers) and the coal-to-gas
/// villages, where `lagging` marks a project behind its schedule.
pub const REGISTERS: &[Register] = &[
    Register {
        code: "scattered_enterprises",
        name_zh: "“散乱污”企业",
        name_en: "Scattered polluting enterprises",
        states: &["pending", "shut_down", "relocated", "upgraded"],
        outstanding: &["pending"],
    },
    Register {
        code: "coal_boilers",
        name_zh: "燃煤锅炉",
        name_en: "Coal boilers",
        states: &["pending", "removed", "converted"],
        outstanding: &["pending"],
    },
    Register {
        code: "coal_to_gas_villages",
        name_zh: "煤改气村庄",
        name_en: "Coal-to-gas villages",
        states: &["planned", "building", "lagging", "supplied"],
        outstanding: &["planned", "building", "lagging"],
    },
];

pub fn register(code: &str) -> Option<&'static Register> {
    REGISTERS.iter().find(|r| r.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_files_hold_the_39_cities_and_14_categories() {
        assert_eq!(cities().len(), 39);
        assert_eq!(categories().len(), 14);
        assert_eq!(city("130500").unwrap().name_en, "Xingtai");
        assert_eq!(city("610100").unwrap().name_en, "Xi'an");
        assert!(category("scattered_polluting").is_some());
        assert!(category("littering").is_none());
    }

    #[test]
    fn counties_belong_to_the_city_sharing_four_digits_except_in_municipalities() {
        assert_eq!(city_of_county("130502").unwrap().code, "130500");
        assert_eq!(city_of_county("110105").unwrap().code, "110000");
        assert_eq!(city_of_county("120116").unwrap().code, "120000");
        assert!(city_of_county("130500").is_none(), "a city is not its own county");
        assert!(city_of_county("130302").is_none(), "Qinhuangdao is not a key city");
        assert!(city_of_county("13050x").is_none());
        assert!(jurisdiction_covers("130500", "130502"));
        assert!(jurisdiction_covers("130502", "130502"));
        assert!(!jurisdiction_covers("130502", "130500"));
        assert!(!jurisdiction_covers("130400", "130502"));
        assert_eq!(province_of("130502"), "130000");
    }
}
