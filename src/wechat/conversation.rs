//! What the WeChat door remembers between messages, in memory: the answer of each message
//! (so WeChat's retries share one computation), answers still owed to a user, and the
//! clarifying question a user has yet to answer. All of it expires; a restart forgets it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::reply::pick_option;
use crate::answer::ClarifyOption;
use crate::config::WeChatConfig;

/// How long a message's answer is kept for WeChat's retries (they come within ~15 s).
const KEEP_ANSWER: Duration = Duration::from_secs(120);

/// The answer to one message, computed once, shared by every try of that message.
pub struct Answering {
    result: watch::Receiver<Option<Arc<str>>>,
    tries: AtomicU32,
    handed_off: AtomicBool,
    started: Instant,
}

impl Answering {
    /// Counts a try; returns its number (1 for WeChat's first).
    pub fn new_try(&self) -> u32 {
        self.tries.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The answer, if it is ready within `limit`.
    pub async fn wait(&self, limit: Duration) -> Option<Arc<str>> {
        let mut result = self.result.clone();
        let ready = tokio::time::timeout(limit, result.wait_for(Option::is_some)).await;
        ready.ok()?.ok()?.clone()
    }

    fn ready(&self) -> Option<Arc<str>> {
        self.result.borrow().clone()
    }

    /// True for the first caller only: the one that arranges a late delivery.
    pub fn hand_off(&self) -> bool {
        !self.handed_off.swap(true, Ordering::SeqCst)
    }
}

struct Clarification {
    question: String,
    options: Vec<ClarifyOption>,
    asked: Instant,
}

#[derive(Default)]
struct User {
    /// Answers that missed every try, delivered with the user's next reply.
    owed: Vec<(Arc<Answering>, Instant)>,
    clarification: Option<Clarification>,
}

pub struct Conversations {
    answers: Mutex<HashMap<String, Arc<Answering>>>,
    users: Mutex<HashMap<(String, String), User>>,
    clarify_ttl: Duration,
    owed_ttl: Duration,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep serving.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Conversations {
    pub fn new(config: &WeChatConfig) -> Self {
        Self {
            answers: Mutex::new(HashMap::new()),
            users: Mutex::new(HashMap::new()),
            clarify_ttl: Duration::from_secs(config.clarify_ttl_secs),
            owed_ttl: Duration::from_secs(config.pending_ttl_secs),
        }
    }

    /// The answer of this message: the one in progress when this is a retry, else a new one
    /// computed by `compute` in the background.
    pub fn join_or_start<F>(
        &self,
        kb: &str,
        message_key: &str,
        compute: impl FnOnce() -> F,
    ) -> Arc<Answering>
    where
        F: Future<Output = String> + Send + 'static,
    {
        let key = format!("{kb}\n{message_key}");
        let mut answers = lock(&self.answers);
        answers.retain(|_, a| a.started.elapsed() < KEEP_ANSWER);
        if let Some(answering) = answers.get(&key) {
            return Arc::clone(answering);
        }
        let (done, result) = watch::channel(None);
        let answering = Arc::new(Answering {
            result,
            tries: AtomicU32::new(0),
            handed_off: AtomicBool::new(false),
            started: Instant::now(),
        });
        answers.insert(key, Arc::clone(&answering));
        let work = compute();
        tokio::spawn(async move {
            let text = work.await;
            done.send_replace(Some(Arc::from(text)));
        });
        answering
    }

    /// Owes `answering` to the user: it goes out with the reply to their next message.
    pub fn defer(&self, kb: &str, user: &str, answering: &Arc<Answering>) {
        let mut users = lock(&self.users);
        self.forget_stale(&mut users);
        let entry = users.entry((kb.to_owned(), user.to_owned())).or_default();
        if !entry.owed.iter().any(|(a, _)| Arc::ptr_eq(a, answering)) {
            entry.owed.push((Arc::clone(answering), Instant::now()));
        }
    }

    /// The owed answers that are ready (other than `current`), oldest first, now delivered.
    pub fn take_ready(&self, kb: &str, user: &str, current: &Arc<Answering>) -> Vec<Arc<str>> {
        let mut users = lock(&self.users);
        let Some(entry) = users.get_mut(&(kb.to_owned(), user.to_owned())) else {
            return Vec::new();
        };
        let ttl = self.owed_ttl;
        let mut ready = Vec::new();
        entry.owed.retain(|(answering, since)| {
            if since.elapsed() > ttl || Arc::ptr_eq(answering, current) {
                return since.elapsed() <= ttl;
            }
            match answering.ready() {
                Some(text) => {
                    ready.push(text);
                    false
                }
                None => true,
            }
        });
        ready
    }

    /// Remembers that the user was asked to choose among `options` for `question`.
    pub fn ask(&self, kb: &str, user: &str, question: String, options: Vec<ClarifyOption>) {
        let mut users = lock(&self.users);
        self.forget_stale(&mut users);
        users
            .entry((kb.to_owned(), user.to_owned()))
            .or_default()
            .clarification = Some(Clarification {
            question,
            options,
            asked: Instant::now(),
        });
    }

    /// Drops expired owed answers and clarifications, and users left with neither, so the
    /// map does not grow with every user ever seen.
    fn forget_stale(&self, users: &mut HashMap<(String, String), User>) {
        users.retain(|_, user| {
            user.owed
                .retain(|(_, since)| since.elapsed() <= self.owed_ttl);
            if user
                .clarification
                .as_ref()
                .is_some_and(|c| c.asked.elapsed() > self.clarify_ttl)
            {
                user.clarification = None;
            }
            !user.owed.is_empty() || user.clarification.is_some()
        });
    }

    /// Reads a message against a pending clarifying question: a choice ("1", "女神节的")
    /// turns into the original question and the chosen option; anything else is a new
    /// question, and the clarification is dropped.
    pub fn read_choice(
        &self,
        kb: &str,
        user: &str,
        text: String,
    ) -> (String, Option<ClarifyOption>) {
        let mut users = lock(&self.users);
        let Some(pending) = users
            .get_mut(&(kb.to_owned(), user.to_owned()))
            .and_then(|u| u.clarification.take())
        else {
            return (text, None);
        };
        if pending.asked.elapsed() > self.clarify_ttl {
            return (text, None);
        }
        match pick_option(&text, &pending.options) {
            Some(i) => (pending.question, pending.options.into_iter().nth(i)),
            None => (text, None),
        }
    }
}
