//! Teams that work on spreadsheets: `skyledger import FILE.csv`.

use shared::testing::WebhookReceiver;
use uuid::Uuid;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_ten_thousand_line_csv_with_fifty_bad_lines_stores_the_rest_and_names_the_fifty() {
    let stack = start().await;
    let receiver = WebhookReceiver::start(vec![]).await;
    campaign(&stack, &receiver).await;
    let dir = std::env::temp_dir().join(format!("skyledger-import-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("checks.csv");
    let mut csv = String::from(
        "id,round,city_code,county_code,checked_at,site_name,credit_code,address,lat,lon,coordinate_system,problem_id,category,severity,description\n",
    );
    let mut bad_lines = vec![];
    for i in 0..10_000 {
        let line = i + 2;
        let (mut lat, mut category, mut city) = ("37.07".to_string(), String::new(), XINGTAI.to_string());
        if i % 25 == 0 {
            category = "dust".into();
        }
        // Fifty bad lines of three kinds: unreadable, refused by the rules, outside the team's cities.
        if i % 200 == 7 {
            bad_lines.push(line);
            match (i / 200) % 3 {
                0 => lat = "north".into(),
                1 => category = "littering".into(),
                _ => city = TAIYUAN.into(),
            }
        }
        let problem = if category.is_empty() { String::new() } else { Uuid::now_v7().to_string() };
        csv.push_str(&format!(
            "{},{ROUND},{city},,2019-05-09T10:20:00+08:00,\"企业 {i}, 东厂区\",,某某路 {i} 号,{lat},114.5{i:04},,{problem},{category},general,露天堆放\n",
            Uuid::now_v7()
        ));
    }
    assert_eq!(bad_lines.len(), 50);
    std::fs::write(&file, csv).unwrap();
    let token = inspector(&stack);
    let import = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_skyledger"))
            .args([
                "import",
                file.to_str().unwrap(),
                "--team",
                FINDER,
                "--url",
                &stack.url("intake"),
                "--token",
                &token,
            ])
            .output()
            .expect("run skyledger import")
    };
    let first = import();
    let said = String::from_utf8_lossy(&first.stdout);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(said.contains("9950 created, 0 already had, 50 refused"), "{said}");
    assert_eq!(count(&stack, "SELECT count(*) FROM intake.inspections").await, 9950);

    // The report names each bad line, once per reason.
    let report = std::fs::read_to_string(dir.join("checks.errors.csv")).unwrap();
    let mut reported: Vec<usize> =
        report.lines().skip(1).map(|l| l.split(',').next().unwrap().parse().unwrap()).collect();
    reported.sort();
    reported.dedup();
    assert_eq!(reported, bad_lines, "{report}");
    assert!(
        report.contains(",lat,") && report.contains(",problems[0].category,") && report.contains(",city_code,"),
        "{report}"
    );

    // Safe to run twice.
    let again = import();
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 created, 9950 already had, 50 refused"));
    assert_eq!(count(&stack, "SELECT count(*) FROM intake.inspections").await, 9950);
    std::fs::remove_dir_all(dir).unwrap();
}
