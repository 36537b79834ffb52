//! The storage port itself: conditions, transactions, queries, as DynamoDB
//! behaves, on both adapters.

use super::*;

// -- the port itself -----------------------------------------------------------

/// GIVEN an empty table WHEN items are put under each condition THEN the
/// conditions hold exactly as DynamoDB's.
pub(crate) async fn conditional_writes(t: TestTable) {
    let table = t.table;
    let k = Key::new("T#x#A", "1");
    table
        .write(Write::Put { item: item("T#x#A", "1", 1), cond: Cond::NotExists })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let again = table.write(Write::Put { item: item("T#x#A", "1", 1), cond: Cond::NotExists }).await;
    assert!(matches!(again, Err(StoreError::ConditionFailed { .. })), "{again:?}");
    let stale = table.write(Write::Put { item: item("T#x#A", "1", 3), cond: Cond::VersionIs(2) }).await;
    assert!(matches!(stale, Err(StoreError::ConditionFailed { .. })));
    table
        .write(Write::Put { item: item("T#x#A", "1", 2), cond: Cond::VersionIs(1) })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(table.get(&k).await.ok().flatten().map(|i| i.version), Some(2));
    let missing = table.write(Write::Delete { key: Key::new("T#x#A", "2"), cond: Cond::VersionIs(1) }).await;
    assert!(matches!(missing, Err(StoreError::ConditionFailed { .. })));
    let touch_missing = table.write(Write::Touch { key: Key::new("T#x#A", "9"), modified: "m".into() }).await;
    assert!(matches!(touch_missing, Err(StoreError::ConditionFailed { .. })));
    table
        .write(Write::Touch { key: k.clone(), modified: "2024-01-01T00:00:00Z".into() })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let touched = table.get(&k).await.ok().flatten();
    assert_eq!(
        touched.as_ref().map(|i| (i.version, i.modified.clone())),
        Some((3, Some("2024-01-01T00:00:00Z".into())))
    );
    assert_eq!(touched.map(|i| i.data), Some("{}".into()), "a touch keeps the body");
    for delta in [5, -2] {
        table.write(Write::Add { key: Key::new("T#x#C", "n"), delta }).await.unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(table.get(&Key::new("T#x#C", "n")).await.ok().flatten().map(|i| i.count), Some(3));
    table.write(Write::Delete { key: k.clone(), cond: Cond::VersionIs(3) }).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(table.get(&k).await.ok().flatten(), None);
}

/// GIVEN a transaction whose third write fails its condition WHEN it runs
/// THEN nothing of it is applied and the failing write is named.
pub(crate) async fn transactions_are_all_or_nothing(t: TestTable) {
    let table = t.table;
    table
        .write(Write::Put { item: item("T#x#B", "taken", 1), cond: Cond::Always })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let result = table
        .transact(vec![
            Write::Put { item: item("T#x#B", "a", 1), cond: Cond::NotExists },
            Write::Add { key: Key::new("T#x#B", "count"), delta: 1 },
            Write::Put { item: item("T#x#B", "taken", 1), cond: Cond::NotExists },
        ])
        .await;
    assert_eq!(result, Err(StoreError::ConditionFailed { index: Some(2) }));
    assert_eq!(table.get(&Key::new("T#x#B", "a")).await.ok().flatten(), None);
    assert_eq!(table.get(&Key::new("T#x#B", "count")).await.ok().flatten(), None);
    let check = table
        .transact(vec![
            Write::Delete { key: Key::new("T#x#B", "nope"), cond: Cond::VersionIs(1) },
            Write::Put { item: item("T#x#B", "b", 1), cond: Cond::Always },
        ])
        .await;
    assert_eq!(check, Err(StoreError::ConditionFailed { index: Some(0) }));
    let too_many: Vec<Write> =
        (0..101).map(|i| Write::Put { item: item("T#x#B", &format!("{i:03}"), 1), cond: Cond::Always }).collect();
    assert!(matches!(table.transact(too_many).await, Err(StoreError::Limit(_))));
    let twice = vec![
        Write::Put { item: item("T#x#B", "c", 1), cond: Cond::Always },
        Write::Delete { key: Key::new("T#x#B", "c"), cond: Cond::Always },
    ];
    assert!(matches!(table.transact(twice).await, Err(StoreError::Limit(_))));
}

/// GIVEN 25 items in a partition WHEN queried 10 at a time, by range, on the table and on GSI1 THEN pages are in key order, complete
/// and without repeats.
pub(crate) async fn key_range_queries_page(t: TestTable) {
    let table = t.table;
    for i in 0..25 {
        let mut it = item("T#x#Q", &format!("k{i:02}"), 1);
        it.gsi1 = Some(Key::new("T#x#G", format!("g{:02}", 24 - i)));
        table.write(Write::Put { item: it, cond: Cond::Always }).await.unwrap_or_else(|e| panic!("{e}"));
    }
    table
        .write(Write::Put { item: item("T#x#Q2", "k00", 1), cond: Cond::Always })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut query = Query::table("T#x#Q", SortKey::All, 10);
    let mut seen = Vec::new();
    loop {
        let page = table.query(&query).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(page.items.len() <= 10);
        seen.extend(page.items.iter().map(|i| i.sk.clone()));
        match page.next {
            Some(n) => query.start_after = Some(n),
            None => break,
        }
    }
    let expected: Vec<String> = (0..25).map(|i| format!("k{i:02}")).collect();
    assert_eq!(seen, expected);
    let range = table.query(&Query::table("T#x#Q", SortKey::Between("k05".into(), "k07".into()), 100)).await;
    assert_eq!(
        range.map(|p| p.items.into_iter().map(|i| i.sk).collect::<Vec<_>>()).ok(),
        Some(vec!["k05".into(), "k06".into(), "k07".into()])
    );
    let mut gsi = Query { index: Index::Gsi1, pk: "T#x#G".into(), sk: SortKey::All, limit: 7, start_after: None };
    let mut by_gsi = Vec::new();
    loop {
        let page = table.query(&gsi).await.unwrap_or_else(|e| panic!("{e}"));
        by_gsi.extend(page.items.iter().map(|i| i.sk.clone()));
        match page.next {
            Some(n) => gsi.start_after = Some(n),
            None => break,
        }
    }
    let reversed: Vec<String> = (0..25).rev().map(|i| format!("k{i:02}")).collect();
    assert_eq!(by_gsi, reversed, "GSI1 orders by its own sort key");
    let keys = vec![Key::new("T#x#Q", "k03"), Key::new("T#x#Q", "missing"), Key::new("T#x#Q2", "k00")];
    let got = table.batch_get(&keys).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.len(), 2, "missing keys are left out");
    let batch = vec![
        Write::Delete { key: Key::new("T#x#Q", "k00"), cond: Cond::Always },
        Write::Put { item: item("T#x#Q", "k99", 1), cond: Cond::Always },
    ];
    table.batch_write(batch).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(table.get(&Key::new("T#x#Q", "k00")).await.ok().flatten(), None);
    assert!(table.get(&Key::new("T#x#Q", "k99")).await.ok().flatten().is_some());
}
