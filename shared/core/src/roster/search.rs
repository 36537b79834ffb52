//! Finding users and groups: indexed equality lookups, bounded scans for
//! other filters, index paging with bookmarks, and cursor paging. Every
//! path reads within a budget ([`Limits`]) and says so when it would not.
//!
//! [`Limits`]: super::types::Limits

use scim_protocol::filter::{Filter, IndexedAttr, IndexedEq};
use scim_protocol::{Paging, ScimError};
use serde_json::json;

use super::claims::id_of_entry;
use super::kernel::{Roster, resources_query};
use super::types::{SearchPage, Stored};
use crate::cursor::{self, CursorState};
use crate::error::Result;
use crate::model::{self, IndexAttr, Kind};
use crate::store::{Cond, Item, Key, MAX_BATCH_GETS, PageKey, Query, SortKey, Write};
use crate::tenant::TenantId;

impl Roster {
    /// How many resources of a kind a tenant has (sum of counter shards).
    pub async fn count(&self, t: &TenantId, kind: Kind) -> Result<u64> {
        let keys: Vec<Key> = (0..model::COUNTER_SHARDS).map(|s| model::counter(t.as_str(), kind, s)).collect();
        let total: i64 = self.table.batch_get(&keys).await?.iter().map(|i| i.count).sum();
        Ok(total.max(0).unsigned_abs())
    }

    /// Resources matching an indexed equality, from the index.
    pub(super) async fn lookup(&self, t: &TenantId, kind: Kind, eq: &IndexedEq) -> Result<Vec<Stored>> {
        let ids = self.lookup_ids(t, kind, eq).await?;
        self.get_many(t, kind, &ids).await
    }

    /// The ids an indexed equality finds, in id order, at most the scan
    /// budget. Index keys are coarser than equality (look-alikes share a
    /// key): what they find is checked against the filter itself.
    async fn lookup_ids(&self, t: &TenantId, kind: Kind, eq: &IndexedEq) -> Result<Vec<String>> {
        let attr = match (kind, eq.attr) {
            (_, IndexedAttr::Id) => {
                return Ok(if model::is_possible_id(&eq.value) { vec![eq.value.clone()] } else { Vec::new() });
            }
            (Kind::Group, IndexedAttr::MemberValue) => {
                let mut ids = self.group_ids_of(t, &eq.value).await?;
                ids.sort();
                return Ok(ids);
            }
            (Kind::User, IndexedAttr::UserName) => IndexAttr::UserName,
            (Kind::User, IndexedAttr::WorkEmail) => IndexAttr::UserWorkEmail,
            (Kind::User, IndexedAttr::ExternalId) => IndexAttr::UserExternalId,
            (Kind::Group, IndexedAttr::ExternalId) => IndexAttr::GroupExternalId,
            (Kind::Group, IndexedAttr::DisplayName) => IndexAttr::GroupName,
            _ => return Ok(Vec::new()),
        };
        if eq.value.len() > self.limits.max_indexed_value {
            return Ok(Vec::new());
        }
        let mut pages = self.pages(Query::table(model::index_pk(t.as_str(), attr, &eq.value), SortKey::All, 0));
        let mut ids = Vec::new();
        while let Some(items) = pages.next().await? {
            ids.extend(items.iter().filter_map(id_of_entry));
            if ids.len() >= self.limits.scan_budget {
                return Err(ScimError::too_many("the filter matches more resources than one request reads").into());
            }
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// List or filter resources, with index or cursor paging.
    pub async fn search(
        &self,
        t: &TenantId,
        kind: Kind,
        filter: Option<&Filter>,
        paging: &Paging,
    ) -> Result<SearchPage> {
        let rt = kind.resource_type();
        if let Some(f) = filter {
            f.validate(rt)?;
        }
        let page_size = paging.page_size(self.limits.default_page_size, self.limits.max_page_size);
        let page_size = usize::try_from(page_size).unwrap_or(usize::MAX);
        if let Some(eq) = filter.and_then(|f| f.indexed_equality(rt)) {
            let ids = self.lookup_ids(t, kind, &eq).await?;
            let mut window = self.window(t, kind, filter, paging, page_size)?;
            let mut budget = ReadBudget::new(self, rt);
            for chunk in ids.chunks(MAX_BATCH_GETS) {
                let keys: Vec<Key> = chunk.iter().map(|id| model::resource(t.as_str(), kind, id)).collect();
                let mut items = self.table.batch_get(&keys).await?;
                items.sort_by(|a, b| a.sk.cmp(&b.sk));
                for item in &items {
                    budget.read(item)?;
                    let s = self.stored(kind, &item.sk, item)?;
                    // Group members are not in the group item: a group found
                    // by membership has that member for the rest of the filter.
                    let matches = filter.is_none_or(|f| {
                        if eq.attr == IndexedAttr::MemberValue {
                            let mut r = s.resource.clone();
                            r.insert("members".into(), json!([{ "value": eq.value }]));
                            f.matches(rt, &r)
                        } else {
                            f.matches(rt, &s.resource)
                        }
                    });
                    if matches {
                        window.offer(s, item.data.len());
                    }
                }
            }
            return Ok(self.page_of(t, kind, filter, window));
        }
        match paging {
            Paging::Index { start_index, .. } => match filter {
                None => self.list_by_index(t, kind, *start_index, page_size).await,
                Some(f) => {
                    let mut window = self.window(t, kind, filter, paging, page_size)?;
                    self.scan_all(t, kind, f, &mut window).await?;
                    Ok(self.page_of(t, kind, filter, window))
                }
            },
            Paging::Cursor { cursor, .. } => self.scan_cursor(t, kind, filter, cursor.as_deref(), page_size).await,
        }
    }

    /// Search users and groups at once (root `/.search`): each kind's
    /// matches in id order, users first, paged by index over the union. A
    /// filter naming attributes one kind lacks matches none of that kind; a
    /// filter that fits neither is the client's error. Each kind is read
    /// from where the window starts in it, and a kind's page that ends early
    /// (its byte budget) ends the union's page there, so the next
    /// `startIndex` continues after it.
    pub async fn search_all(&self, t: &TenantId, filter: Option<&Filter>, paging: &Paging) -> Result<SearchPage> {
        let Paging::Index { start_index, count } = *paging else {
            return Err(ScimError::invalid_value(
                "cursor paging is offered per resource type (/Users/.search, /Groups/.search)",
            )
            .into());
        };
        let count = count.unwrap_or(self.limits.default_page_size).min(self.limits.max_page_size);
        let kinds: Vec<Kind> = [Kind::User, Kind::Group]
            .into_iter()
            .filter(|k| filter.is_none_or(|f| f.validate(k.resource_type()).is_ok()))
            .collect();
        if let (Some(f), true) = (filter, kinds.is_empty()) {
            f.validate(Kind::User.resource_type())?;
        }
        let (mut total, mut resources) = (0, Vec::new());
        // Where the window starts within the kinds not yet read, and how
        // many resources it still wants; `ended`: a page ended early.
        let (mut offset, mut wanted, mut ended) = (start_index - 1, count, false);
        for kind in kinds {
            let window = if ended { 0 } else { wanted };
            let page =
                self.search(t, kind, filter, &Paging::Index { start_index: offset + 1, count: Some(window) }).await?;
            let got = page.resources.len() as u64;
            ended |= got < page.total.saturating_sub(offset).min(window);
            total += page.total;
            offset = offset.saturating_sub(page.total);
            wanted -= got.min(wanted);
            resources.extend(page.resources);
        }
        Ok(SearchPage { total, start_index: Some(start_index), resources, next_cursor: None })
    }

    pub(super) fn cursor_scope(t: &TenantId, kind: Kind, filter: Option<&Filter>) -> String {
        format!("{t}|{}|{}", kind.as_str(), model::digest(&filter.map(ToString::to_string).unwrap_or_default()))
    }

    /// Where a page of counted matches starts: `startIndex`, or the offset
    /// a cursor over counted matches carries.
    fn window(
        &self,
        t: &TenantId,
        kind: Kind,
        filter: Option<&Filter>,
        paging: &Paging,
        page_size: usize,
    ) -> Result<Window> {
        let (offset, start_index) = match paging {
            Paging::Index { start_index, .. } => (start_index - 1, Some(*start_index)),
            Paging::Cursor { cursor: None, .. } => (0, None),
            Paging::Cursor { cursor: Some(c), .. } => {
                let scope = Self::cursor_scope(t, kind, filter);
                (cursor::decode(&self.cursor_key, c, &scope, self.clock.now().unix_timestamp())?.seen, None)
            }
        };
        Ok(Window::new(offset, start_index, page_size, self.limits.max_page_bytes))
    }

    /// The page a window of counted matches gives (indexed lookups, bounded
    /// scans); in cursor paging, a cursor past its last resource.
    fn page_of(&self, t: &TenantId, kind: Kind, filter: Option<&Filter>, window: Window) -> SearchPage {
        let end = window.offset + window.kept.len() as u64;
        let next_cursor = (window.start_index.is_none() && end < window.total).then(|| {
            cursor::encode(
                &self.cursor_key,
                &CursorState {
                    scope: Self::cursor_scope(t, kind, filter),
                    after: None,
                    seen: end,
                    exp: self.clock.now().unix_timestamp() + self.limits.cursor_ttl_secs,
                },
            )
        });
        SearchPage { total: window.total, start_index: window.start_index, resources: window.kept, next_cursor }
    }

    /// Unfiltered index paging: exact total from the counters, and a
    /// bookmark left at the end of each page so that the next page starts
    /// with a key lookup instead of re-reading everything before it.
    pub(super) async fn list_by_index(
        &self,
        t: &TenantId,
        kind: Kind,
        start_index: u64,
        page_size: usize,
    ) -> Result<SearchPage> {
        let total = self.count(t, kind).await?;
        let offset = start_index - 1;
        let now = self.clock.now().unix_timestamp();
        let mut after: Option<PageKey> = None;
        if offset > 0 && offset < total {
            let mark = self.table.get(&model::bookmark(t.as_str(), kind, &offset.to_string())).await?;
            after = mark
                .filter(|m| m.expires_at.is_none_or(|e| e > now))
                .and_then(|m| serde_json::from_str::<PageKey>(&m.data).ok());
            if after.is_none() {
                after = self.skip(t, kind, offset).await?;
            }
        }
        let mut resources = Vec::new();
        if offset < total && page_size > 0 {
            let page =
                self.table.query(&Query { limit: page_size, start_after: after, ..resources_query(t, kind) }).await?;
            for item in &page.items {
                resources.push(self.stored(kind, &item.sk, item)?);
            }
            if let (Some(last), true) = (page.items.last(), offset + (resources.len() as u64) < total) {
                let next_offset = offset + resources.len() as u64;
                let key = model::bookmark(t.as_str(), kind, &next_offset.to_string());
                let mark = PageKey { key: last.key(), gsi1: None };
                let item = Item {
                    pk: key.pk,
                    sk: key.sk,
                    version: 1,
                    expires_at: Some(now + self.limits.cursor_ttl_secs),
                    data: serde_json::to_string(&mark).unwrap_or_default(),
                    ..Item::default()
                };
                self.table.write(Write::Put { item, cond: Cond::Always }).await?;
            }
        }
        Ok(SearchPage { total, start_index: Some(start_index), resources, next_cursor: None })
    }

    /// Read past `offset` items when no bookmark says where they end.
    pub(super) async fn skip(&self, t: &TenantId, kind: Kind, offset: u64) -> Result<Option<PageKey>> {
        if offset > self.limits.scan_budget as u64 {
            return Err(ScimError::too_many(format!(
                "startIndex {} is further than one request reads ({}) without the page before it; \
                 page through the list in order, or use cursor paging",
                offset + 1,
                self.limits.scan_budget
            ))
            .into());
        }
        let mut left = usize::try_from(offset).unwrap_or(usize::MAX);
        let mut budget = ReadBudget::new(self, kind.resource_type());
        let mut pages = self.pages(resources_query(t, kind));
        while left > 0 {
            let Some(items) = pages.next_at_most(left).await? else { break };
            for item in &items {
                budget.read(item)?;
            }
            left -= items.len().min(left);
            match items.last() {
                Some(last) if left == 0 => return Ok(Some(PageKey { key: last.key(), gsi1: None })),
                _ => {}
            }
        }
        Ok(None)
    }

    /// Evaluate a non-indexed filter over a whole partition, within the scan
    /// budget: beyond it the filter needs an indexed attribute or cursors.
    /// Matches are counted; only the window's are kept.
    async fn scan_all(&self, t: &TenantId, kind: Kind, f: &Filter, window: &mut Window) -> Result<()> {
        let rt = kind.resource_type();
        let mut budget = ReadBudget::new(self, rt);
        let mut pages = self.pages(resources_query(t, kind));
        // One item past the budget tells "more than the budget" apart from
        // "exactly the budget".
        while let Some(items) = pages.next_at_most(self.limits.scan_budget + 1 - budget.items).await? {
            for item in &items {
                budget.read(item)?;
                let s = self.stored(kind, &item.sk, item)?;
                if f.matches(rt, &s.resource) {
                    window.offer(s, item.data.len());
                }
            }
        }
        Ok(())
    }

    /// Cursor paging (RFC 9865) over a partition: each page reads at most
    /// the cursor read budget, so a sparse filter returns short pages with
    /// a cursor rather than long waits.
    pub(super) async fn scan_cursor(
        &self,
        t: &TenantId,
        kind: Kind,
        filter: Option<&Filter>,
        cursor_text: Option<&str>,
        page_size: usize,
    ) -> Result<SearchPage> {
        let rt = kind.resource_type();
        let scope = Self::cursor_scope(t, kind, filter);
        let now = self.clock.now().unix_timestamp();
        let state = match cursor_text {
            Some(c) => Some(cursor::decode(&self.cursor_key, c, &scope, now)?),
            None => None,
        };
        let (mut after, seen) = state.map(|s| (s.after, s.seen)).unwrap_or((None, 0));
        let mut resources = Vec::new();
        let mut read = 0usize;
        let mut more = true;
        let mut read_bytes = 0usize;
        let mut page_bytes = 0usize;
        'pages: while resources.len() < page_size
            && read < self.limits.cursor_read_budget
            && read_bytes < self.limits.read_budget_bytes
        {
            let limit = (self.limits.cursor_read_budget - read).min(1000);
            let query = Query { limit, start_after: after.clone(), ..resources_query(t, kind) };
            let page = self.table.query(&query).await?;
            for (i, item) in page.items.iter().enumerate() {
                let bytes = item.data.len();
                let s = self.stored(kind, &item.sk, item)?;
                let matched = filter.is_none_or(|f| f.matches(rt, &s.resource));
                if matched && !resources.is_empty() && page_bytes + bytes > self.limits.max_page_bytes {
                    // This one starts the next page: the cursor stays before it.
                    more = true;
                    break 'pages;
                }
                read += 1;
                read_bytes += bytes;
                after = Some(PageKey { key: item.key(), gsi1: None });
                if matched {
                    page_bytes += bytes;
                    resources.push(s);
                    if resources.len() == page_size {
                        // More may follow unless this was the partition's end.
                        more = page.next.is_some() || i + 1 < page.items.len();
                        break 'pages;
                    }
                }
            }
            if page.next.is_none() {
                more = false;
                break;
            }
        }
        let returned = seen + resources.len() as u64;
        let total = match filter {
            None => self.count(t, kind).await?,
            // Known exactly once the scan reached the end; until then, the
            // matches so far (RFC 9865 lets totalResults be approximate).
            Some(_) => returned,
        };
        let next_cursor = more.then(|| {
            cursor::encode(
                &self.cursor_key,
                &CursorState { scope, after, seen: returned, exp: now + self.limits.cursor_ttl_secs },
            )
        });
        Ok(SearchPage { total, start_index: None, resources, next_cursor })
    }
}

/// The matches of a search, counted, of which only one page is kept: the
/// matches from `offset` on, up to the page size and the page's byte
/// budget (at least one). What follows is counted, never held.
struct Window {
    offset: u64,
    start_index: Option<u64>,
    page_size: usize,
    max_bytes: usize,
    total: u64,
    kept: Vec<Stored>,
    kept_bytes: usize,
    /// The page ended: later matches are only counted.
    closed: bool,
}

impl Window {
    fn new(offset: u64, start_index: Option<u64>, page_size: usize, max_bytes: usize) -> Self {
        Self { offset, start_index, page_size, max_bytes, total: 0, kept: Vec::new(), kept_bytes: 0, closed: false }
    }

    /// One more match, in order, of `bytes` stored bytes.
    fn offer(&mut self, s: Stored, bytes: usize) {
        let position = self.total;
        self.total += 1;
        if self.closed || position < self.offset {
            return;
        }
        let full = self.kept.len() >= self.page_size;
        if full || (!self.kept.is_empty() && self.kept_bytes + bytes > self.max_bytes) {
            self.closed = true;
            return;
        }
        self.kept_bytes += bytes;
        self.kept.push(s);
    }
}

/// What one request may read to answer a filter or reach a `startIndex`:
/// the scan budget in items and the read budget in bytes; past either,
/// `tooMany` saying what to ask instead.
struct ReadBudget {
    rt: &'static scim_protocol::ResourceType,
    max_items: usize,
    max_bytes: usize,
    items: usize,
    bytes: usize,
}

impl ReadBudget {
    fn new(roster: &Roster, rt: &'static scim_protocol::ResourceType) -> Self {
        let l = roster.limits();
        Self { rt, max_items: l.scan_budget, max_bytes: l.read_budget_bytes, items: 0, bytes: 0 }
    }

    fn read(&mut self, item: &Item) -> Result<()> {
        self.items += 1;
        self.bytes += item.data.len();
        if self.items > self.max_items || self.bytes > self.max_bytes {
            return Err(ScimError::too_many(format!(
                "this request would read more {}s than one request may ({} or {} MiB); filter with {} \
                 (served by an index), or use cursor paging",
                self.rt.name,
                self.max_items,
                self.max_bytes >> 20,
                scim_protocol::filter::indexed_filters(self.rt)
            ))
            .into());
        }
        Ok(())
    }
}
