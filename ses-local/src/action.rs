//! `Action`: every SES Query API action ses-local implements, listed once (the macro makes the
//! enum, its wire names and the list from one line each).

macro_rules! actions {
    ($($action:ident),* $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Action {
            $($action),*
        }

        impl Action {
            /// Every action, in the order above.
            pub const ALL: &'static [Action] = &[$(Action::$action),*];

            /// The `Action` parameter's value, which is also the name of the result element.
            pub fn name(self) -> &'static str {
                match self {
                    $(Action::$action => stringify!($action)),*
                }
            }
        }
    };
}

actions!(
    CreateCustomVerificationEmailTemplate,
    GetCustomVerificationEmailTemplate,
    UpdateCustomVerificationEmailTemplate,
    DeleteCustomVerificationEmailTemplate,
    ListCustomVerificationEmailTemplates,
    VerifyEmailIdentity,
    GetIdentityVerificationAttributes,
    DeleteIdentity,
    ListIdentities,
    SendCustomVerificationEmail,
    GetSendQuota,
);

impl Action {
    /// The action named by an `Action` parameter, exactly (SES is case-sensitive here).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|a| a.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_parses_from_its_own_name_and_nothing_else_does() {
        assert_eq!(Action::ALL.len(), 11);
        for action in Action::ALL {
            assert_eq!(Action::parse(action.name()), Some(*action));
        }
        assert_eq!(
            Action::SendCustomVerificationEmail.name(),
            "SendCustomVerificationEmail"
        );
        for unknown in [
            "",
            "SendEmail",
            "sendcustomverificationemail",
            "ListIdentities ",
        ] {
            assert_eq!(Action::parse(unknown), None, "{unknown:?}");
        }
    }
}
