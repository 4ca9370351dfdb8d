//! The names the contract fixes: tables, columns, roles, telemetry names. One place only.

/// The first `N` of `names` (a list that begins another).
pub const fn first<const N: usize, const M: usize>(names: [&'static str; M]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < N {
        out[i] = names[i];
        i += 1;
    }
    out
}

/// `a` followed by `b` (`N` must be their lengths' sum).
pub const fn join<const A: usize, const B: usize, const N: usize>(
    a: [&'static str; A],
    b: [&'static str; B],
) -> [&'static str; N] {
    assert!(A + B == N, "join: N is the sum of the lengths");
    let mut out = [""; N];
    let mut i = 0;
    while i < N {
        out[i] = if i < A { a[i] } else { b[i - A] };
        i += 1;
    }
    out
}

pub mod table {
    pub const DAILY_ACTIVITY: &str = "daily_activity";
    pub const DAILY_SPEND: &str = "daily_spend";
    pub const DAILY_SPEND_BY_MODEL: &str = "daily_spend_by_model";
    pub const DAILY_ACCEPT_RATE: &str = "daily_accept_rate";
    pub const DAILY_LINES: &str = "daily_lines";
    pub const MEMBER_DAILY: &str = "member_daily";
    pub const MEMBER_MONTHLY: &str = "member_monthly";
    pub const DAILY_BY_DIMENSION: &str = "daily_by_dimension";
    pub const MONTHLY_BY_DIMENSION: &str = "monthly_by_dimension";
    pub const MEMBER_DAILY_BY_TOOL: &str = "member_daily_by_tool";
    pub const MEMBER_DAILY_BY_MODEL: &str = "member_daily_by_model";
    pub const DAILY_ADOPTION: &str = "daily_adoption";
    pub const MEMBERS: &str = "members";
    /// Every output table, in the order they are written.
    pub const ALL: [&str; 13] = [
        DAILY_ACTIVITY,
        DAILY_SPEND,
        DAILY_SPEND_BY_MODEL,
        DAILY_ACCEPT_RATE,
        DAILY_LINES,
        MEMBER_DAILY,
        MEMBER_MONTHLY,
        DAILY_BY_DIMENSION,
        MONTHLY_BY_DIMENSION,
        MEMBER_DAILY_BY_TOOL,
        MEMBER_DAILY_BY_MODEL,
        DAILY_ADOPTION,
        MEMBERS,
    ];
    /// Tables whose rows of a month depend on that month's facts alone (built per month): every
    /// table but the last two, adoption's, which fold all months.
    pub const MONTHLY: [&str; 11] = super::first(ALL);
    /// Internal per-month rows (never published): each (date, member)'s role, spend,
    /// organisation id and terminal type, for adoption and the API-shaped export.
    pub const MEMBER_DAYS: &str = "_member_days";
}

pub mod col {
    pub const DATE: &str = "date";
    pub const MONTH: &str = "month";
    pub const ACTIVE_USERS: &str = "active_users";
    pub const SESSIONS: &str = "sessions";
    pub const SPEND_USD: &str = "spend_usd";
    pub const MODEL: &str = "model";
    pub const REQUESTS: &str = "requests";
    pub const INPUT_TOKENS: &str = "input_tokens";
    pub const OUTPUT_TOKENS: &str = "output_tokens";
    pub const CACHE_READ_TOKENS: &str = "cache_read_tokens";
    pub const CACHE_CREATION_TOKENS: &str = "cache_creation_tokens";
    pub const TOOL: &str = "tool";
    pub const ACCEPTED: &str = "accepted";
    pub const REJECTED: &str = "rejected";
    pub const ACCEPT_RATE: &str = "accept_rate";
    pub const LINES_ACCEPTED: &str = "lines_accepted";
    pub const LINES_REMOVED: &str = "lines_removed";
    pub const MEMBER: &str = "member";
    pub const MEMBER_TYPE: &str = "member_type";
    pub const ROLE: &str = "role";
    pub const COMMITS: &str = "commits";
    pub const PULL_REQUESTS: &str = "pull_requests";
    pub const ACTIVE_DAYS: &str = "active_days";
    pub const DIMENSION: &str = "dimension";
    pub const VALUE: &str = "value";
    pub const ACTIVE_USERS_7D: &str = "active_users_7d";
    pub const ACTIVE_USERS_28D: &str = "active_users_28d";
    pub const NEW_USERS: &str = "new_users";
    pub const ROSTER_MEMBERS: &str = "roster_members";
    pub const ROSTER_ACTIVE_28D: &str = "roster_active_28d";
    pub const FIRST_ACTIVE: &str = "first_active";
    pub const LAST_ACTIVE: &str = "last_active";
    pub const ACTIVE_DAYS_28D: &str = "active_days_28d";
    pub const SPEND_USD_28D: &str = "spend_usd_28d";
    pub const IN_ROSTER: &str = "in_roster";
    /// Columns a policy may `drop` for a role (contract 5.3): any but the keys that give a row
    /// its meaning (date, month, member, model, tool).
    pub const DROPPABLE: [&str; 28] = [
        ACTIVE_USERS_7D,
        ACTIVE_USERS_28D,
        NEW_USERS,
        ROSTER_MEMBERS,
        ROSTER_ACTIVE_28D,
        FIRST_ACTIVE,
        LAST_ACTIVE,
        ACTIVE_DAYS_28D,
        SPEND_USD_28D,
        IN_ROSTER,
        ROLE,
        MEMBER_TYPE,
        ACTIVE_USERS,
        SESSIONS,
        ACTIVE_DAYS,
        SPEND_USD,
        REQUESTS,
        INPUT_TOKENS,
        OUTPUT_TOKENS,
        CACHE_READ_TOKENS,
        CACHE_CREATION_TOKENS,
        ACCEPTED,
        REJECTED,
        ACCEPT_RATE,
        LINES_ACCEPTED,
        LINES_REMOVED,
        COMMITS,
        PULL_REQUESTS,
    ];
}

/// Organisation roles (contract 5.3).
pub const ROLES: [&str; 8] = [
    "primary_owner",
    "owner",
    "billing",
    "admin",
    "developer",
    "user",
    "claude_code_user",
    "membership_admin",
];
/// Roles that may see analytics under the built-in policy.
pub const ANALYTICS_ROLES: [&str; 5] = ["primary_owner", "owner", "billing", "admin", "developer"];

pub mod member_type {
    pub const USER: &str = "user";
    pub const API_KEY: &str = "api_key";
    pub const INSTALL: &str = "install";
    pub const UNATTRIBUTED: &str = "unattributed";
}
pub const UNATTRIBUTED_MEMBER: &str = "(unattributed)";
pub const UNKNOWN_MODEL: &str = "unknown";
pub const ALL_TOOLS: &str = "all";
/// The code-editing tools whose decisions make the accept rate.
pub const EDIT_TOOLS: [&str; 4] = ["Edit", "MultiEdit", "Write", "NotebookEdit"];

/// Telemetry names (contract 3.1).
pub mod otel {
    pub const PREFIX: &str = "claude_code.";
    pub const SCOPE_PREFIX: &str = "com.anthropic.claude_code";
    pub const EV_API_REQUEST: &str = "api_request";
    pub const EV_TOOL_DECISION: &str = "tool_decision";
    pub const M_COST: &str = "claude_code.cost.usage";
    pub const M_TOKEN: &str = "claude_code.token.usage";
    pub const M_DECISION: &str = "claude_code.code_edit_tool.decision";
    pub const M_LINES: &str = "claude_code.lines_of_code.count";
    pub const M_COMMIT: &str = "claude_code.commit.count";
    pub const M_PR: &str = "claude_code.pull_request.count";
    pub const M_SESSION: &str = "claude_code.session.count";
    pub const AGENTS_VIEW: &str = "agents_view";
}
