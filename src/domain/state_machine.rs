//! The two state machines of §3, as data: one table of allowed transitions each.
//!
//! The tables are the single source of truth: the engine consults them, the OpenAPI description
//! and docs/STATE_MACHINES.md publish them, and the table-driven tests walk every pair.

/// One allowed transition: in state `from`, `action` leads to state `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition<State, Action> {
    pub from: State,
    pub action: Action,
    pub to: State,
}

/// A transition the table does not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidTransition {
    pub from: &'static str,
    pub action: &'static str,
    pub to: &'static str,
}

macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|value| value.as_str() == text)
            }
        }
    };
}

string_enum!(
    /// §3 Account: `active → frozen → active`; `active|frozen → closed`; `closed` is final.
    AccountStatus { Active => "active", Frozen => "frozen", Closed => "closed" }
);

string_enum!(AccountAction { Freeze => "freeze", Unfreeze => "unfreeze", Close => "close" });

string_enum!(
    /// §3 Transfer: `pending → posted | voided | expired`; `posted` may be reversed (it stays
    /// `posted`, its `reversed_amount` grows); `voided` and `expired` are final.
    TransferState {
        Pending => "pending",
        Posted => "posted",
        Voided => "voided",
        Expired => "expired"
    }
);

string_enum!(TransferAction {
    Post => "post",
    Void => "void",
    Expire => "expire",
    Reverse => "reverse"
});

pub const ACCOUNT_TRANSITIONS: &[Transition<AccountStatus, AccountAction>] = &[
    Transition {
        from: AccountStatus::Active,
        action: AccountAction::Freeze,
        to: AccountStatus::Frozen,
    },
    Transition {
        from: AccountStatus::Frozen,
        action: AccountAction::Unfreeze,
        to: AccountStatus::Active,
    },
    Transition {
        from: AccountStatus::Active,
        action: AccountAction::Close,
        to: AccountStatus::Closed,
    },
    Transition {
        from: AccountStatus::Frozen,
        action: AccountAction::Close,
        to: AccountStatus::Closed,
    },
];

pub const TRANSFER_TRANSITIONS: &[Transition<TransferState, TransferAction>] = &[
    Transition {
        from: TransferState::Pending,
        action: TransferAction::Post,
        to: TransferState::Posted,
    },
    Transition {
        from: TransferState::Pending,
        action: TransferAction::Void,
        to: TransferState::Voided,
    },
    Transition {
        from: TransferState::Pending,
        action: TransferAction::Expire,
        to: TransferState::Expired,
    },
    Transition {
        from: TransferState::Posted,
        action: TransferAction::Reverse,
        to: TransferState::Posted,
    },
];

impl AccountAction {
    /// The state this action aims at, named in the rejection of an illegal transition.
    pub fn target(&self) -> AccountStatus {
        match self {
            AccountAction::Freeze => AccountStatus::Frozen,
            AccountAction::Unfreeze => AccountStatus::Active,
            AccountAction::Close => AccountStatus::Closed,
        }
    }
}

impl TransferAction {
    pub fn target(&self) -> TransferState {
        match self {
            TransferAction::Post | TransferAction::Reverse => TransferState::Posted,
            TransferAction::Void => TransferState::Voided,
            TransferAction::Expire => TransferState::Expired,
        }
    }
}

pub fn next_account_status(
    from: AccountStatus,
    action: AccountAction,
) -> Result<AccountStatus, InvalidTransition> {
    ACCOUNT_TRANSITIONS
        .iter()
        .find(|transition| transition.from == from && transition.action == action)
        .map(|transition| transition.to)
        .ok_or(InvalidTransition {
            from: from.as_str(),
            action: action.as_str(),
            to: action.target().as_str(),
        })
}

pub fn next_transfer_state(
    from: TransferState,
    action: TransferAction,
) -> Result<TransferState, InvalidTransition> {
    TRANSFER_TRANSITIONS
        .iter()
        .find(|transition| transition.from == from && transition.action == action)
        .map(|transition| transition.to)
        .ok_or(InvalidTransition {
            from: from.as_str(),
            action: action.as_str(),
            to: action.target().as_str(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_transfer_states_have_no_way_out() {
        for state in [TransferState::Voided, TransferState::Expired] {
            for action in TransferAction::ALL {
                assert!(
                    next_transfer_state(state, *action).is_err(),
                    "{state:?} {action:?}"
                );
            }
        }
    }

    #[test]
    fn a_closed_account_stays_closed() {
        for action in AccountAction::ALL {
            let rejection = next_account_status(AccountStatus::Closed, *action).unwrap_err();
            assert_eq!(rejection.from, "closed");
        }
    }

    #[test]
    fn every_transition_in_the_tables_is_unique() {
        for (index, transition) in TRANSFER_TRANSITIONS.iter().enumerate() {
            let duplicates = TRANSFER_TRANSITIONS[index + 1..]
                .iter()
                .filter(|other| other.from == transition.from && other.action == transition.action);
            assert_eq!(duplicates.count(), 0);
        }
        for (index, transition) in ACCOUNT_TRANSITIONS.iter().enumerate() {
            let duplicates = ACCOUNT_TRANSITIONS[index + 1..]
                .iter()
                .filter(|other| other.from == transition.from && other.action == transition.action);
            assert_eq!(duplicates.count(), 0);
        }
    }
}
