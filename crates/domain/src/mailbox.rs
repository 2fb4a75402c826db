//! `Mailbox`: the inbox an address delivers to, as far as its provider documents it, so limits
//! key on the person's inbox and not on the string a stranger typed. Pure.
//!
//! The rules, in order:
//! - the whole address is lowercased (every major provider treats the local part without case);
//! - a `+tag` subaddress is dropped, for every domain (RFC 5233 subaddressing: Gmail, Outlook,
//!   iCloud, Proton, Fastmail and most servers deliver `a+x@` to `a@`); a `+` at the start is
//!   part of the name, since a tag needs a name before it;
//! - providers' own documented aliases, in [`PROVIDERS`]: Gmail ignores dots and googlemail.com
//!   is gmail.com; iCloud's me.com and mac.com are icloud.com; a Yahoo disposable address is
//!   `base-keyword@`.
//!
//! Invariants: canonicalising is idempotent; it only ever merges addresses (never splits one), so
//! a limit can only get stricter; the address sent to SES is never this one, but as typed.
//!
//! The gate's fair queue and its per-domain share of direct sends key on
//! [`Mailbox::fair_domain`], the registrable domain (eTLD+1): the label just under the public
//! suffix, so `a1.attacker.tld`, `a2.attacker.tld`… are one lane. The suffixes known are
//! [`SECOND_LEVEL_SUFFIXES`], a subset of the ICANN section of Mozilla's Public Suffix List;
//! anything else is a suffix of one label. Since every entry is a real ICANN rule, the key is
//! always a suffix of the true registrable domain: a suffix left out (or added to the list later)
//! merges more domains into one lane, never fewer, so a stale table costs fairness among those
//! domains but gives no one extra lanes. Private-section suffixes (`github.io`, dynamic DNS), whose
//! names anyone can get for free, are left out on purpose.

use crate::email::EmailAddress;

/// What a provider documents about its addresses.
struct Provider {
    /// The domains that are one mailbox namespace; the first is the canonical one.
    domains: &'static [&'static str],
    /// Dots in the local part are ignored.
    ignores_dots: bool,
    /// A separator other than `+` that starts a tag (Yahoo's disposable `base-keyword`).
    extra_tag_separator: Option<char>,
}

const PROVIDERS: &[Provider] = &[
    // support.google.com/mail/answer/7436150 (dots) and /10313 (googlemail.com).
    Provider {
        domains: &["gmail.com", "googlemail.com"],
        ignores_dots: true,
        extra_tag_separator: None,
    },
    // support.apple.com/HT201771: @me.com and @mac.com addresses are the same iCloud mailbox.
    Provider {
        domains: &["icloud.com", "me.com", "mac.com"],
        ignores_dots: false,
        extra_tag_separator: None,
    },
    // help.yahoo.com "disposable addresses": base name, a hyphen, a keyword. Yahoo IDs
    // themselves cannot contain a hyphen.
    Provider {
        domains: &["yahoo.com"],
        ignores_dots: false,
        extra_tag_separator: Some('-'),
    },
];

/// `local` without its tag: everything from the first `separator` that has a name before it. A
/// separator at the start is part of the name (`+x@` is its own mailbox, and `+x+y@` is `+x@`).
fn before_tag(local: &str, separator: char) -> &str {
    local
        .char_indices()
        .skip(1)
        .find(|&(_, c)| c == separator)
        .map_or(local, |(at, _)| &local[..at])
}

/// The canonical mailbox of an address, e.g. `janedoe@gmail.com` for `Jane.Doe+x@googlemail.com`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mailbox(String);

impl Mailbox {
    pub fn of(email: &EmailAddress) -> Self {
        let lowered = email.as_str().to_lowercase();
        let (local, domain) = lowered.rsplit_once('@').unwrap_or(("", &lowered));
        let provider = PROVIDERS.iter().find(|p| p.domains.contains(&domain));
        let domain = provider.map_or(domain, |p| p.domains[0]);
        let mut local = before_tag(local, '+');
        if let Some(separator) = provider.and_then(|p| p.extra_tag_separator) {
            local = before_tag(local, separator);
        }
        // `a.+x@` is `a.@`, which no mailbox can be named (a dot-atom ends in a letter): `a@`.
        let mut local = local.trim_end_matches('.').to_string();
        if provider.is_some_and(|p| p.ignores_dots) {
            local.retain(|c| c != '.');
        }
        Self(format!("{local}@{domain}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The recipient domain, in full, after provider aliases (googlemail → gmail).
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, d)| d)
    }

    /// The key of fair scheduling: the registrable domain of [`Mailbox::domain`], the label just
    /// under its public suffix (`mail.example.co.uk` → `example.co.uk`, `a.b.gmail.com` →
    /// `gmail.com`, `a.github.io` → `github.io`). The suffix is the top-level domain, or its
    /// last two labels when [`SECOND_LEVEL_SUFFIXES`] lists them; a TLD it does not know is a
    /// suffix like any other (`corp.internal`). A domain that is itself a public suffix
    /// (`co.uk`) is its own key.
    pub fn fair_domain(&self) -> &str {
        registrable_domain(self.domain())
    }
}

/// The registrable domain (eTLD+1) of `domain`, as [`Mailbox::fair_domain`] describes: the label
/// just under its public suffix, by [`SECOND_LEVEL_SUFFIXES`]; a domain that is itself a public
/// suffix is its own.
pub fn registrable_domain(domain: &str) -> &str {
    let mut labels = domain.rsplit('.');
    let (Some(tld), Some(second)) = (labels.next(), labels.next()) else {
        return domain;
    };
    let kept = if is_second_level_suffix(tld, second) {
        3
    } else {
        2
    };
    domain
        .rmatch_indices('.')
        .nth(kept - 1)
        .and_then(|(dot, _)| domain.get(dot + 1..))
        .unwrap_or(domain)
}

/// Whether `second.tld` is a public suffix in [`SECOND_LEVEL_SUFFIXES`] (a binary search: the
/// table is sorted by TLD, which a test keeps so).
fn is_second_level_suffix(tld: &str, second: &str) -> bool {
    crate::sorted_text::find_line(SECOND_LEVEL_SUFFIXES, tld)
        .and_then(|line| line.split_once(' '))
        .is_some_and(|(_, seconds)| seconds.split(' ').any(|s| s == "*" || s == second))
}

/// Public suffixes of two labels: a TLD, then the second-level labels under it that are suffixes
/// (`*`: every one). Taken from the ICANN section of the Public Suffix List (Debian's
/// `publicsuffix` package, list of 2023-02-09): its two-label ASCII rules whose first label is a
/// generic one (`co com net org edu gov ac or ne go gob mil nom ltd plc me sch info biz gen firm
/// int in res web nic mob tv name pro ind nhs police gouv govt gv gos gub gc k12 lg ed nt nat
/// asso ecn nome`) and its `*.tld` rules without exceptions (so not `ck`). 1,130 of the list's
/// 7,380 ICANN rules: with the lookup, about 2 KB of the gzipped wasm, where the ICANN rules
/// alone would be 29 KB gzipped as text and the `psl` crate, which compiles the whole list into
/// code, adds 261 KB (the upload's budget is 320 KB in all). Rules of three labels and
/// more (`*.kawasaki.jp`, `k12.ca.us`) and the other two-label ones (`waw.pl`, `公司.cn`) are
/// left out: the domains under them share their parent's lane.
const SECOND_LEVEL_SUFFIXES: &str = "\
ac com edu gov mil net org
ad nom
ae ac co gov mil net org sch
aero res
af com edu gov net org
ag co com net nom org
ai com net org
al com edu gov mil net org
am co com net org
ao co ed gv
ar com edu gob gov int mil net org
as gov
at ac co gv or
au com edu gov info net nt org
aw com
az biz com edu gov info int mil name net org pro
ba com edu gov mil net org
bb biz co com edu gov info net org tv
bd *
be ac
bf gov
bh com edu gov net org
bi co com edu or org
bj co com edu info net org
bm com edu gov net org
bn com edu gov net org
bo com edu gob info int mil net org tv web
br com ecn edu gov ind mil net org pro tv
bs com edu gov net org
bt com edu gov net org
bw co org
by com gov mil
bz com edu gov net org
ca gc nt
cd gov
ci ac asso co com ed edu go gouv int net or org
cl co gob gov mil
cm co com gov net
cn ac com edu gov mil net org
co com edu firm gov info int mil net nom org web
cr ac co ed go or
cu com edu gov net org
cv com edu int nome org
cw com edu net org
cx gov
cy ac biz com gov ltd mil net org pro
dm com edu gov net org
do com edu gob gov mil net org web
dz asso com edu gov net org
ec com edu gob gov info k12 mil net org pro
ee com edu gov org
eg com edu gov mil name net org
er *
es com edu gob nom org
et biz com edu gov info name net org
fj ac biz com gov info mil name net org pro
fk *
fm com edu net org
fr asso com gouv nom
gd edu gov
ge com edu gov mil net org
gg co net org
gh com edu gov mil org
gi com edu gov ltd org
gl co com edu net org
gn ac com edu gov net org
gp asso com edu net org
gr com edu gov net org
gt com edu gob ind mil net org
gu com edu gov info net org web
gy co com edu gov net org
hk com edu gov net org
hn com edu gob mil net org
hr com name
ht asso com edu firm gouv info net org pro
hu co info org
id ac biz co go mil net or sch web
ie gov
il ac co gov k12 net org
im ac co com net org tv
in ac biz co com edu firm gen gov ind info int me mil net nic org pro res tv
io com
iq com edu gov mil net org
ir ac co gov net org sch
is com edu gov int net org
it co edu go gov me or tv
je co net org
jm *
jo com edu gov mil name net org sch
jp ac co ed go lg ne or
ke ac co go info me ne or
kg com edu gov mil net org
kh *
ki biz com edu gov info net org
km asso com edu gouv gov mil nom org
kn edu gov net org
kp com edu gov org
kr ac co go mil ne or
kw com edu gov ind net org
ky com edu net org
kz com edu gov mil net org
la com edu gov info int net org
lb com edu gov net org
lc co com edu gov net org
lk ac com edu gov int ltd net org sch web
lr com edu gov net org
ls ac biz co edu gov info net org
lt gov
lv com edu gov mil net org
ly com edu gov net org plc sch
ma ac co gov net org
mc asso
me ac co edu gov net org
mg co com edu gov mil nom org
mk com edu gov name net org
ml com edu gouv gov net org
mm *
mn edu gov org
mo com edu gov net org
mr gov
ms com edu gov net org
mt com edu net org
mu ac co com gov net or org
mv biz com edu gov info int mil name net org pro
mw ac biz co com edu gov int net org
mx com edu gob net org
my biz com edu gov mil name net org
mz ac co edu gov mil net org
na co com in info name or org pro tv
nc asso nom
nf com firm info net web
ng com edu gov mil name net org sch
ni ac biz co com edu gob in info int mil net nom org web
no mil nt
np *
nr biz com edu gov info net org
nz ac co gen govt mil net org
om co com edu gov net org pro
pa ac com edu gob net nom org
pe com edu gob mil net nom org
pf com edu org
pg *
ph com edu gov mil net org
pk biz com edu gob gos gov info net org web
pl biz com edu gov info mil net nom org
pn co edu gov net org
pr ac biz com edu gov info name net org pro
ps com edu gov net org
pt com edu gov int net nome org
pw co ed go ne or
py com edu gov mil net org
qa com edu gov mil name net org sch
re asso com nom
ro com firm info nom nt org
rs ac co edu gov in org
rw ac co gov mil net org
sa com edu gov net org sch
sb com edu gov net org
sc com edu gov net org
sd com edu gov info net org tv
se ac org
sg com edu gov net org
sh com gov mil net org
sl com edu gov net org
sn com edu gouv org
so com edu gov me net org
ss biz com edu gov me net org sch
st co com edu mil net org
sv com edu gob org
sx gov
sy com edu gov mil net org
sz ac co org
th ac co go in net or
tj ac biz co com edu go gov int mil name net nic org web
tl gov
tm co com edu gov mil net nom org
tn com gov ind info nat net org
to com edu gov mil net org
tr biz com edu gen gov info k12 mil name net org tv web
tt biz co com edu gov info int name net org pro
tw com edu gov mil net org
tz ac co go info me mil ne or tv
ua com edu gov in lg net org
ug ac co com go ne or org
uk ac co gov ltd me net nhs org plc police
us co in me ne or
uy com edu gub mil net org
uz co com net org
vc com edu gov mil net org
ve co com edu firm gob gov info int mil net nom org web
vi co com k12 net org
vn ac biz com edu gov info int name net org pro
vu com edu net org
ws com edu gov net org
ye com edu gov mil net org
za ac co edu gov mil net nic nom org web
zm ac biz co com edu gov info mil net org sch
zw ac co gov mil org
";

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(address: &str) -> String {
        Mailbox::of(&EmailAddress::parse(address).expect("valid")).0
    }

    #[test]
    fn variants_of_one_mailbox_are_one_mailbox() {
        let cases: &[(&str, &str)] = &[
            // The issue's own attack: six variants of one mailbox.
            ("victim@example.com", "victim@example.com"),
            ("victim+1@example.com", "victim@example.com"),
            ("Victim+2@example.com", "victim@example.com"),
            ("VICTIM+3@EXAMPLE.COM", "victim@example.com"),
            ("victim+news@example.com", "victim@example.com"),
            ("victim+a+b@example.com", "victim@example.com"),
            // Gmail: dots, case, tags, googlemail.
            ("jane.doe@gmail.com", "janedoe@gmail.com"),
            ("janedoe@gmail.com", "janedoe@gmail.com"),
            ("j.a.n.e.d.o.e@gmail.com", "janedoe@gmail.com"),
            ("JaneDoe+x@gmail.com", "janedoe@gmail.com"),
            ("Jane.Doe+x.y@GoogleMail.com", "janedoe@gmail.com"),
            ("ja.ne.do.e+@gmail.com", "janedoe@gmail.com"),
            ("JANE.DOE@GMAIL.COM", "janedoe@gmail.com"),
            ("janedoe@googlemail.com", "janedoe@gmail.com"),
            // iCloud aliases.
            ("Tim@me.com", "tim@icloud.com"),
            ("tim@mac.com", "tim@icloud.com"),
            ("tim+shop@icloud.com", "tim@icloud.com"),
            // Yahoo disposable addresses.
            ("alice-shopping@yahoo.com", "alice@yahoo.com"),
            ("alice-a-b@yahoo.com", "alice@yahoo.com"),
            ("Alice+x@Yahoo.com", "alice@yahoo.com"),
            // Outlook and Proton: only case and + tags.
            ("bob+spam@outlook.com", "bob@outlook.com"),
            ("Bob@Hotmail.com", "bob@hotmail.com"),
            ("carol+news@proton.me", "carol@proton.me"),
        ];
        for (typed, mailbox) in cases {
            assert_eq!(canonical(typed), *mailbox, "{typed}");
        }
    }

    #[test]
    fn distinct_mailboxes_stay_distinct() {
        let cases: &[(&str, &str)] = &[
            // Dots count outside Gmail.
            ("jane.doe@example.com", "jane.doe@example.com"),
            ("jane.doe@outlook.com", "jane.doe@outlook.com"),
            // Hyphens count outside Yahoo.
            ("mary-ann@example.com", "mary-ann@example.com"),
            ("mary-ann@gmail.com", "mary-ann@gmail.com"),
            // Domains are not merged unless the provider says so.
            ("tim@icloud.com.evil.example", "tim@icloud.com.evil.example"),
            ("tim@mail.gmail.com", "tim@mail.gmail.com"),
            ("bob@live.com", "bob@live.com"),
            ("carol@pm.me", "carol@pm.me"),
        ];
        for (typed, mailbox) in cases {
            assert_eq!(canonical(typed), *mailbox, "{typed}");
        }
        assert_ne!(canonical("a.b@example.com"), canonical("ab@example.com"));
        assert_ne!(canonical("ann@gmail.com"), canonical("ann@yahoo.com"));
    }

    #[test]
    fn a_separator_at_the_start_is_part_of_the_name_and_a_later_one_starts_the_tag() {
        assert_eq!(canonical("+x@example.com"), "+x@example.com");
        assert_eq!(canonical("-x@yahoo.com"), "-x@yahoo.com");
        assert_eq!(canonical("+@gmail.com"), "+@gmail.com");
        // Found by the email_address fuzz target: a tag on such an address was another mailbox.
        assert_eq!(canonical("+x+fuzz@example.com"), "+x@example.com");
        assert_eq!(canonical("-x+fuzz@yahoo.com"), "-x@yahoo.com");
        assert_eq!(canonical("++fuzz@gmail.com"), "+@gmail.com");
    }

    #[test]
    fn a_dot_before_the_tag_is_dropped_with_it_so_the_mailbox_is_an_address() {
        // Found by the email_address fuzz target: `a&d.@e.co.com` could not be parsed again.
        assert_eq!(canonical("a&d.+cn?.e@e.co.com"), "a&d@e.co.com");
        assert_eq!(
            canonical("ann.+x@example.com"),
            canonical("ann@example.com")
        );
    }

    #[test]
    fn canonicalising_is_idempotent_and_the_domain_is_the_canonical_one() {
        for typed in [
            "Jane.Doe+x@GoogleMail.com",
            "alice-shopping@yahoo.com",
            "Tim+a@me.com",
            "victim+a+b@EXAMPLE.com",
            "+x@example.com",
        ] {
            let once = Mailbox::of(&EmailAddress::parse(typed).expect("valid"));
            let twice = Mailbox::of(&EmailAddress::parse(once.as_str()).expect("valid"));
            assert_eq!(once, twice, "{typed}");
        }
        let mailbox = Mailbox::of(&EmailAddress::parse("x@googlemail.com").expect("valid"));
        assert_eq!(mailbox.domain(), "gmail.com");
    }

    fn fair_domain(address: &str) -> String {
        let email = EmailAddress::parse(address).expect("valid");
        Mailbox::of(&email).fair_domain().to_string()
    }

    #[test]
    fn the_fair_domain_is_the_registrable_domain_under_the_icann_public_suffix() {
        let cases: &[(&str, &str)] = &[
            ("a@x.mailinator.com", "mailinator.com"),
            ("a@mailinator.com", "mailinator.com"),
            ("a@a.b.example.co.uk", "example.co.uk"),
            ("a@example.co.uk", "example.co.uk"),
            ("a@mail.google.com", "google.com"),
            ("a@smtp.mail.yahoo.co.jp", "yahoo.co.jp"),
            ("a@dept.uni.edu.au", "uni.edu.au"),
            ("a@shop.example.com.bd", "example.com.bd"),
            // Provider aliases first, as for the mailbox.
            ("a@googlemail.com", "gmail.com"),
            ("a@Mac.com", "icloud.com"),
            // A private-section suffix is not a registry: its names are free for anyone.
            ("a@someone.github.io", "github.io"),
            ("a@host.duckdns.org", "duckdns.org"),
            // Internationalised names, in their ASCII form.
            ("a@почта.пример.рф", "xn--e1afmkfd.xn--p1ai"),
            ("a@mail.Bücher.de", "xn--bcher-kva.de"),
            ("a@post.bücher.com.au", "xn--bcher-kva.com.au"),
            // A TLD the list does not know: a suffix of one label.
            ("a@mail.corp.internal", "corp.internal"),
            // A public suffix itself: the whole domain.
            ("a@co.uk", "co.uk"),
            // A suffix of three labels is not in the table: its domains share the parent's lane.
            ("a@school.k12.ca.us", "ca.us"),
        ];
        for (address, key) in cases {
            assert_eq!(fair_domain(address), *key, "{address}");
        }
    }

    #[test]
    fn rotating_subdomains_share_one_fair_lane_and_it_is_a_suffix_of_the_domain() {
        let lanes: Vec<String> = (1..=50)
            .map(|n| fair_domain(&format!("x{n}@a{n}.attacker.xyz")))
            .collect();
        assert!(lanes.iter().all(|lane| lane == "attacker.xyz"), "{lanes:?}");
        for address in ["a@b.c.d.example.com", "a@gmail.com", "a@x.y.ck", "a@co.uk"] {
            let email = EmailAddress::parse(address).expect("valid");
            let mailbox = Mailbox::of(&email);
            assert!(
                mailbox.domain().ends_with(mailbox.fair_domain()),
                "{address}"
            );
            assert!(!mailbox.fair_domain().is_empty(), "{address}");
        }
        assert_ne!(fair_domain("a@attacker.xyz"), fair_domain("a@gmail.com"));
    }

    #[test]
    fn the_suffix_table_has_one_sorted_line_per_tld_of_lowercase_labels() {
        let lines: Vec<&str> = SECOND_LEVEL_SUFFIXES.lines().collect();
        let tlds: Vec<&str> = lines.iter().filter_map(|l| l.split(' ').next()).collect();
        assert!(
            tlds.windows(2).all(|w| w[0] < w[1]),
            "TLDs sorted, once each"
        );
        for line in lines {
            let labels: Vec<&str> = line.split(' ').collect();
            assert!(labels.len() >= 2, "{line:?}");
            assert!(labels[1..].windows(2).all(|w| w[0] < w[1]), "{line:?}");
            assert!(
                labels.iter().all(|l| *l == "*"
                    || (!l.is_empty()
                        && l.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))),
                "{line:?}"
            );
        }
    }

    #[test]
    fn an_internationalised_domain_is_compared_in_its_ascii_form() {
        assert_eq!(
            canonical("Anna+x@Bücher.example"),
            "anna@xn--bcher-kva.example"
        );
    }
}
