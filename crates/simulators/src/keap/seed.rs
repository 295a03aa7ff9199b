//! Deterministic seed data: the same [`AppConfig`] (account name and seed sizes) always
//! gives the same records. Seeded dates lie in the year before [`ANCHOR`]; records
//! written through the API carry the real clock (UTC).

use chrono::{DateTime, NaiveDateTime};
use super::xmlrpc::{Struct, Value};

use super::schema::{COMPANY, CONTACT, CONTACT_ACTION, LEAD, USER};
use super::store::AccountData;
use super::AppConfig;
use crate::rng::Rng;

/// 2025-01-06T00:00:00Z.
const ANCHOR: i64 = 1_736_121_600;
const YEAR: i64 = 365 * 86_400;

const FIRST: &[&str] = &[
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Elijah", "Sophia", "Mateo", "Isabella", "Lucas", "Mia", "Amara", "Hiroshi",
    "Priya", "Chen", "Fatima", "Diego", "Ingrid", "Kwame", "Leila", "Tomasz", "Aoife", "Rafael", "Nadia", "Zoë",
];
const LAST: &[&str] = &[
    "Garcia", "Smith", "Johnson", "Nguyen", "Okafor", "Müller", "Rossi", "Kowalski", "Tanaka", "Patel", "O'Brien",
    "Haddad", "Silva", "Andersson", "Kim", "Novak", "Dubois", "Martinez", "Walker", "Murphy", "Lopez", "Ibrahim",
];
const COMPANIES: &[&str] = &[
    "Bluebird Interiors", "Cedar & Pine Co.", "Northwind Traders", "Harbor Lane Cafe", "Atlas Studio", "Greenleaf Florists",
    "Summit Outfitters", "Lumen Design", "Riverbend Bakery", "Ironclad Fitness", "Maple Street Dental", "Copperpot Catering",
    "Brightside Tutoring", "Westfield Plumbing", "Orchid Spa", "Pioneer Landscaping",
];
const STREETS: &[&str] = &["Main Street", "Oak Avenue", "Maple Drive", "Cedar Lane", "Elm Street", "Congress Avenue", "Harbor Road"];
/// City, state, postal code, country, phone area code.
const CITIES: &[(&str, &str, &str, &str, &str)] = &[
    ("Chandler", "AZ", "85226", "United States", "480"),
    ("Austin", "TX", "78751", "United States", "512"),
    ("Seattle", "WA", "98101", "United States", "206"),
    ("Denver", "CO", "80202", "United States", "303"),
    ("Chicago", "IL", "60601", "United States", "312"),
    ("Portland", "OR", "97205", "United States", "503"),
    ("Boston", "MA", "02108", "United States", "617"),
    ("Toronto", "ON", "M5H 2N2", "Canada", "416"),
    ("Sydney", "NSW", "2000", "Australia", "02"),
];
const CONTACT_TYPES: &[&str] = &["Lead", "Prospect", "Customer", "Other"];
const LEAD_SOURCES: &[&str] = &["Website", "Referral", "Trade Show", "Facebook", "Google Ads", "Webinar"];
const OPPORTUNITIES: &[&str] = &[
    "Annual coaching package", "Website redesign", "Quarterly maintenance plan", "Team training", "Premium membership",
    "Spring campaign", "Consulting retainer", "Product bundle upgrade",
];
const NOTES: &[&str] = &[
    "Called to follow up on the proposal; asked for a revised quote.",
    "Left a voicemail about renewing the plan.",
    "Met at the trade show booth, interested in the premium tier.",
    "Sent the onboarding checklist by e-mail.",
    "Asked to be contacted again next quarter.",
    "Signed up for the webinar series.",
];
/// ObjectType, ActionType, ActionDescription; weights below.
const ACTIONS: &[(&str, &str, &str)] = &[
    ("Note", "Call", "Follow-up call"),
    ("Note", "Email", "E-mail sent"),
    ("Note", "Other", "General note"),
    ("Task", "Call", "Call back"),
    ("Task", "Email", "Send proposal"),
    ("Appointment", "Meeting", "Discovery meeting"),
];
const ACTION_WEIGHTS: &[u32] = &[5, 4, 3, 3, 2, 2];
const USER_TITLES: &[&str] = &["Owner", "Sales Manager", "Account Executive", "Office Manager", "Marketing Lead"];
/// Keap's default opportunity stages have ids from 20 up.
const STAGES: &[i32] = &[20, 21, 22, 23, 24, 25];

fn date(ts: i64) -> Value {
    Value::DateTime(DateTime::from_timestamp(ts, 0).map(|d| d.naive_utc()).unwrap_or(NaiveDateTime::MIN))
}

fn rec(pairs: Vec<(&str, Value)>) -> Struct {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn slug(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_lowercase()
}

/// Creation and update stamps within the seed year, updated no earlier than created.
fn stamps(rng: &mut Rng) -> (i64, i64) {
    let created = ANCHOR - YEAR + rng.range(0, YEAR - 86_400);
    let updated = (created + rng.range(0, 90 * 86_400)).min(ANCHOR - 1);
    (created, updated)
}

fn phone(rng: &mut Rng, area: &str) -> String {
    format!("({area}) 555-{:04}", rng.range(100, 9999))
}

pub(crate) fn seed_account(cfg: &AppConfig) -> AccountData {
    let mut d = AccountData::new();
    let mut rng = Rng::from_text(&cfg.account, 0x6b65_6170);
    let domain = format!("{}.example.com", slug(&cfg.account));

    let mut users = Vec::new();
    for i in 0..cfg.seed.users {
        let (first, last) = (*rng.pick(FIRST), *rng.pick(LAST));
        let (city, state, zip, country, area) = *rng.pick(CITIES);
        let r = rec(vec![
            ("FirstName", first.into()),
            ("LastName", last.into()),
            ("Title", (*USER_TITLES.get(i).unwrap_or(&"Account Executive")).into()),
            ("Email", format!("{}.{}@{domain}", slug(first), slug(last)).into()),
            ("Phone1", phone(&mut rng, area).into()),
            ("Phone1Type", "Work".into()),
            ("City", city.into()),
            ("State", state.into()),
            ("PostalCode", zip.into()),
            ("Country", country.into()),
            ("GlobalUserId", Value::Int(40_000 + rng.range(0, 9_999) as i32)),
            ("Partner", Value::Int(0)),
        ]);
        users.push(d.insert_raw(&USER, r));
    }
    let owner = |rng: &mut Rng| if users.is_empty() { Value::Int(0) } else { Value::Int(*rng.pick(&users)) };

    let mut companies = Vec::new();
    for i in 0..cfg.seed.companies {
        let base = COMPANIES[i % COMPANIES.len()];
        let name = if i < COMPANIES.len() { base.to_owned() } else { format!("{base} {}", i / COMPANIES.len() + 1) };
        let (city, state, zip, country, area) = *rng.pick(CITIES);
        let (created, updated) = stamps(&mut rng);
        let (first, last) = (*rng.pick(FIRST), *rng.pick(LAST));
        let r = rec(vec![
            ("Company", name.clone().into()),
            ("FirstName", first.into()),
            ("LastName", last.into()),
            ("Email", format!("info@{}.example.com", slug(&name)).into()),
            ("Phone1", phone(&mut rng, area).into()),
            ("Phone1Type", "Work".into()),
            ("StreetAddress1", format!("{} {}", rng.range(10, 9_999), rng.pick(STREETS)).into()),
            ("City", city.into()),
            ("State", state.into()),
            ("PostalCode", zip.into()),
            ("Country", country.into()),
            ("Website", format!("https://www.{}.example.com", slug(&name)).into()),
            ("OwnerID", owner(&mut rng)),
            ("DateCreated", date(created)),
            ("LastUpdated", date(updated)),
        ]);
        let id = d.insert_raw(&COMPANY, r);
        companies.push((id, name));
    }

    let mut contacts = Vec::new();
    for _ in 0..cfg.seed.contacts {
        let (first, last) = (*rng.pick(FIRST), *rng.pick(LAST));
        let (city, state, zip, country, area) = *rng.pick(CITIES);
        let (created, updated) = stamps(&mut rng);
        let mut pairs = vec![
            ("FirstName", Value::from(first)),
            ("LastName", last.into()),
            ("Email", format!("{}.{}{}@example.com", slug(first), slug(last), rng.range(1, 99)).into()),
            ("Phone1", phone(&mut rng, area).into()),
            ("Phone1Type", "Mobile".into()),
            ("StreetAddress1", format!("{} {}", rng.range(10, 9_999), rng.pick(STREETS)).into()),
            ("City", city.into()),
            ("State", state.into()),
            ("PostalCode", zip.into()),
            ("Country", country.into()),
            ("ContactType", (*rng.pick(CONTACT_TYPES)).into()),
            ("Leadsource", (*rng.pick(LEAD_SOURCES)).into()),
            ("OwnerID", owner(&mut rng)),
            ("DateCreated", date(created)),
            ("LastUpdated", date(updated)),
        ];
        if !companies.is_empty() && rng.chance(0.6) {
            let (cid, name) = rng.pick(&companies).clone();
            pairs.push(("Company", name.into()));
            pairs.push(("CompanyID", Value::Int(cid)));
            pairs.push(("JobTitle", (*rng.pick(&["Owner", "Manager", "Director", "Assistant"])).into()));
        }
        let id = d.insert_raw(&CONTACT, rec(pairs));
        contacts.push((id, created));
    }

    if !contacts.is_empty() {
        for _ in 0..cfg.seed.opportunities {
            let (contact, contact_created) = *rng.pick(&contacts);
            let created = (contact_created + rng.range(0, 60 * 86_400)).min(ANCHOR - 2);
            let updated = (created + rng.range(0, 30 * 86_400)).min(ANCHOR - 1);
            let low = rng.range(5, 200) as f64 * 50.0;
            let r = rec(vec![
                ("OpportunityTitle", (*rng.pick(OPPORTUNITIES)).into()),
                ("ContactID", Value::Int(contact)),
                ("StageID", Value::Int(*rng.pick(STAGES))),
                ("UserID", owner(&mut rng)),
                ("Leadsource", (*rng.pick(LEAD_SOURCES)).into()),
                ("OpportunityNotes", (*rng.pick(NOTES)).into()),
                ("ProjectedRevenueLow", Value::Double(low)),
                ("ProjectedRevenueHigh", Value::Double(low * 2.0)),
                ("IncludeInForecast", Value::Int(i32::from(rng.chance(0.7)))),
                ("EstimatedCloseDate", date(created + rng.range(14, 120) * 86_400)),
                ("DateCreated", date(created)),
                ("LastUpdated", date(updated)),
            ]);
            d.insert_raw(&LEAD, r);
        }
        for _ in 0..cfg.seed.actions {
            let (contact, contact_created) = *rng.pick(&contacts);
            let (object_type, action_type, description) = ACTIONS[rng.weighted(ACTION_WEIGHTS)];
            let created = (contact_created + rng.range(0, 90 * 86_400)).min(ANCHOR - 2);
            let action_date = created + rng.range(0, 14) * 86_400;
            let mut pairs = vec![
                ("ContactId", Value::Int(contact)),
                ("ObjectType", object_type.into()),
                ("ActionType", action_type.into()),
                ("ActionDescription", description.into()),
                ("CreationNotes", (*rng.pick(NOTES)).into()),
                ("ActionDate", date(action_date)),
                ("IsAppointment", Value::Int(i32::from(object_type == "Appointment"))),
                ("UserID", owner(&mut rng)),
                ("CreationDate", date(created)),
                ("LastUpdated", date((created + rng.range(0, 86_400)).min(ANCHOR - 1))),
            ];
            if object_type != "Note" && rng.chance(0.5) {
                pairs.push(("CompletionDate", date(action_date + rng.range(0, 5) * 86_400)));
            }
            d.insert_raw(&CONTACT_ACTION, rec(pairs));
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_config_same_data() {
        let cfg = AppConfig::default();
        let (a, b) = (seed_account(&cfg), seed_account(&cfg));
        for t in super::super::schema::TABLES {
            assert_eq!(a.len(t), b.len(t));
        }
        assert_eq!(a.get(&CONTACT, 2), b.get(&CONTACT, 2));
        assert_eq!(a.len(&CONTACT), 60);
        assert_eq!(a.len(&USER), 4);
        let other = seed_account(&AppConfig { account: "other".into(), ..AppConfig::default() });
        assert_ne!(a.get(&CONTACT, 2), other.get(&CONTACT, 2));
    }
}
