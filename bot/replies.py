"""Short replies to the person who pressed a button or typed a ``/learn`` command: the wording in one place.

Longer learner-facing messages (lessons, reminders, digests, recaps) are Jinja templates loaded by
:mod:`bot.templating`; the one- or two-sentence answers a person gets back right away (confirmations, refusals,
usage hints) live here, as constants and small functions, so they can be read, reviewed and translated together
instead of being scattered as literals through :mod:`bot.commands`, :mod:`bot.dispatcher` and
:mod:`bot.live.chat`. Callers pass values already formatted for chat Markdown (times in the person's zone, names
made inert); these functions only place them in the sentence.
"""

from __future__ import annotations

# ---------------------------------------------------------------------- any action
UNSUPPORTED_EVENT = "Unsupported event."
MALFORMED_REQUEST = "Sorry, I could not read that request. If it came from a button, the message may be out of date."
BUTTON_INACTIVE = "That button is no longer active."
BUTTON_INVALID = "That button is no longer valid."
ANSWER_BUTTON_INVALID = "That answer button is no longer valid."
POLL_BUTTON_INVALID = "That poll button is no longer valid."
FORM_INACTIVE = "That form is no longer active."
NOT_A_QUIZ = "That step is not a quiz."
NOT_A_REFLECTION = "That step is not a reflection."
NOT_A_POLL = "That step is not a poll."
DATE_IN_THE_PAST = "That date is in the past."
UNCLOSED_QUOTE = "I couldn't read that: a quote is not closed."


def usage(text: str) -> str:
    return f"Usage: /learn {text}"


def not_a_date_or_duration(text: str) -> str:
    return f"'{text}' is neither a date (YYYY-MM-DD) nor a duration (like 3d or 2w)."


def unknown_command(name: str, known: str) -> str:
    return f"I don't know '/learn {name}'. Try one of: {known}. `/learn help` explains each."


def unknown_cohort(name: str) -> str:
    return f"There is no cohort called '{name}' here. `/learn cohort list` shows them."


def session_in_several_cohorts(step_id: str, names: str) -> str:
    return f"Several of your cohorts have '{step_id}' ({names}); add the cohort name."


def no_led_cohort_has_session(step_id: str) -> str:
    return f"None of the cohorts you lead has a session '{step_id}'."


# ---------------------------------------------------------------------- buttons on step cards
PICK_AN_OPTION = "Pick at least one option, then press Submit answer."
RSVP = {
    "yes": "You're going. See you there! Check-in opens shortly before the start.",
    "maybe": "Noted as maybe. I'll remind you before it starts.",
    "no": "Thanks for letting us know. If there's a recording, you'll get a catch-up afterwards.",
    "wait": "The session is full, so you're on the waitlist. I'll keep you posted.",
}
#: The line that replaces the RSVP buttons on the invite, so the card shows the current answer.
RSVP_CONTEXT = {"yes": "✅ You're going", "maybe": "🤔 Maybe", "no": "❌ Can't make it", "wait": "⏳ Waitlist"}
CHECKED_IN = "You're checked in. Enjoy the session!"
ALREADY_CHECKED_IN = "You're already checked in."
NO_JOIN_LINK = "This session has no join link; see the invite for the location."
ALREADY_REFLECTED = "You've already shared this reflection. Thank you!"
REFLECTION_SAVED = "Thanks for your reflection. It's saved with your progress."
REFLECTION_PLACEHOLDER = "A few sentences is plenty"
REMINDERS_BACK_ON = "Welcome back! Reminders are on again."


def snoozed_step(when: str) -> str:
    return f"Snoozed. I'll remind you again around {when}."


def step_comes_back(when: str) -> str:
    return f"Got it. I'll bring this back {when}."


def join_here(url: str) -> str:
    return f"Join here: [{url}]({url})"


# ---------------------------------------------------------------------- /learn for learners
PROGRESS_TITLE = "Your progress"
UP_NEXT_TITLE = "Up next"
COMING_UP_LIVE = "Coming up live"
HOME_TITLE = "Your learning"
STREAK_LABEL = "Streak"
NOT_ENROLLED = "You're not enrolled in any program yet. Your cohort lead can add you."
NOT_ENROLLED_HOME = "You're not enrolled in a program yet."
NOTHING_WAITING = "Nothing is waiting for you right now. Enjoy the breather!"
SNOOZE_RANGE = "Snooze for between a minute and 30 days, e.g. `/learn snooze 2h`."
PAUSE_USAGE = "Usage: /learn pause <YYYY-MM-DD | duration>, e.g. `/learn pause 2026-08-20`."
RESUMED = "Welcome back! Everything is running again."
MANAGERS_ONLY = "`/learn team` is for managers; nobody reports to you in Blendwise yet."
STREAK_NONE = "Start one today"


def reminders_snoozed(when: str) -> str:
    return f"Reminders snoozed until {when}."


def paused_until(when: str) -> str:
    return (
        f"Paused until {when}. Nothing is lost: "
        "what comes due meanwhile waits for you. `/learn resume` to come back early."
    )


def times_in(tz: str) -> str:
    return f"Times in {tz}"


def streak(days: int) -> str:
    return f"{days} day{'s' if days != 1 else ''} in a row"


# ---------------------------------------------------------------------- /learn for leads and admins
COHORTS_TITLE = "Cohorts"
DISCUSSION_TITLE = "Discussion"
ANNOUNCEMENT_TITLE = "Announcement"
MENTION_SOMEONE = "Mention at least one person: /learn enroll <cohort> @user ..."
NO_COHORTS = "No cohorts yet."


def prompt_posting(channel: str | None) -> str:
    return f"Posting your prompt to {channel}. Replies in its thread count as participation."


def announcement_queued(channel: str | None) -> str:
    return f"Announcement queued for {channel}."


def waitlisted_checkin(title: str) -> str:
    return (
        f"You are on the waitlist for '{title}', so check-in is for the people holding a seat. "
        "If a seat frees up you will hear from us; a lead can also mark you present."
    )


def session_full(title: str) -> str:
    return f"'{title}' is full, so there is no seat to check in to. A lead can still mark you present."


def checkin_now(title: str, cohort: str, state: str) -> str:
    return f"Check-in for '{title}' ({cohort}) is now {state}."


def roster_title(cohort: str, count: int) -> str:
    return f"Roster: {cohort} ({count})"


def nobody_enrolled(cohort: str) -> str:
    return f"Nobody is enrolled in {cohort} yet."


def enrolled(count: int, cohort: str, names: str) -> str:
    return f"Enrolled {count} in {cohort}: {names}."


def unknown_program(program_id: str, known: str) -> str:
    return f"No program '{program_id}'. Known: {known}."


def not_a_date(text: str) -> str:
    return f"'{text}' is not a date; use YYYY-MM-DD."


def cohort_created(name: str, program_id: str, start: object) -> str:
    return f"Created cohort {name} ({program_id}) starting {start}. You are its lead."


# ---------------------------------------------------------------------- live feature: polls
NO_POLLS = "No polls yet."


def polls_in(cohort: str) -> str:
    return f"Polls in {cohort}"


def poll_title(poll_id: int, question: str) -> str:
    return f"Poll {poll_id}: {question}"


def poll_closed_title(poll_id: int, question: str) -> str:
    return f"Poll {poll_id} closed: {question}"


VOTE_REMOVED = "Your vote is removed."
POLL_IS_ANONYMOUS = " This poll is anonymous."


def poll_on_its_way(poll_id: int, channel: str | None) -> str:
    return f"Poll {poll_id} is on its way to {channel}. Close it with `/learn poll close {poll_id}`."


def your_choices(picked: str) -> str:
    return f"Your choices: {picked}. Tap an option again to remove it."


def your_vote(picked: str) -> str:
    return f"Your vote: {picked}. Tap another option to change it."


# ---------------------------------------------------------------------- live feature: recordings and recaps
ONE_TRANSCRIPT = "Attach one transcript file (.vtt, .srt or .txt)."
ATTACH_ONE_REPORT = "Attach one participant report (the CSV Zoom, Google Meet or Teams exports) to the command."
RECAP_UPDATED_TITLE = "Recap updated"


def recap_released_title(title: str) -> str:
    return f"Recap released: {title}"



def recording_saved(title: str, step_id: str) -> str:
    return (
        f"Recording saved for '{title}'. Attach a transcript to get a summary and recap quiz, or "
        f"`/learn recap release {step_id}` to send the recording link now."
    )


def recording_and_transcript_saved(title: str, details: str, how: str, *, released: bool = False) -> str:
    return (
        f"Recording and transcript saved for '{title}' ({details}). "
        f"I'm preparing {how}; I'll send it to you for review before anything goes to learners."
        + (" Learners keep the released recap until you release the new one." if released else "")
    )


def no_transcript(title: str) -> str:
    return f"'{title}' has no transcript; attach one with `/learn recording`."


def drafting_again(title: str) -> str:
    return f"Drafting the recap of '{title}' again; I'll send it to you for review."


def attach_edited_recap(step_id: str) -> str:
    return f"Attach the edited recap as a YAML file (get it with `blendwise session recap {step_id} --show`)."


def not_utf8(name: str) -> str:
    return f"{name}: the file is not UTF-8 text"


def recap_released(title: str, catchups: int, recordings: int) -> str:
    return (
        f"Released the recap of '{title}': {catchups} catch-up lesson(s) for those who missed it "
        f"and {recordings} recording link(s) are on their way."
    )


def released(catchups: int, recordings: int) -> str:
    return f"Released: {catchups} catch-up lesson(s) and {recordings} recording link(s) are on their way."


# ---------------------------------------------------------------------- live feature: search
SEARCH_USAGE = "Usage: /learn search <words>, e.g. `/learn search delegation`"
RESULT_GONE = "That result is no longer available; search again."
RESULT_NOT_YOURS = "That result is not part of your programs."
SESSION_GONE = "That session is no longer available."
SENDING_LESSON_AGAIN = "Sending you that lesson again in a direct message."
LOOSE_MATCHES = "No result has every word; these match some of them.\n\n"
SEARCH_KIND_LABEL = {"lesson": "Lesson", "summary": "Session summary", "transcript": "Session transcript"}


def search_title(terms: str) -> str:
    return f"Search: {terms}"


def open_result(n: int) -> str:
    return f"Open {n}"


def watch_recording(url: str) -> str:
    return f"Recording: [watch it here]({url})"



def nothing_found(terms: str) -> str:
    return f"Nothing found for '{terms}' in your programs and sessions."


def lesson_opens_on(when: str) -> str:
    return f"That lesson opens on {when}; it will come to you then."


# ---------------------------------------------------------------------- moving and cancelling live sessions
def not_a_session_time(text: str) -> str:
    return f"'{text}' is not a date and time; write it as YYYY-MM-DD HH:MM, e.g. 2026-03-12 15:00."


def unknown_time_zone(name: str) -> str:
    return f"Unknown time zone '{name}'; use an IANA name such as Europe/Berlin."


def session_moved(title: str, when: str, updated: int) -> str:
    return (
        f"'{title}' now starts {when}. Reminders and check-in follow the new time; {updated} invite(s) will be "
        "updated with a new calendar file."
    )


def session_cancelled(title: str, updated: int) -> str:
    return (
        f"'{title}' is cancelled. Its reminders are dropped, it no longer counts toward completion, and {updated} "
        "learner(s) will get the cancellation with a calendar file that removes it."
    )


# ---------------------------------------------------------------------- attendance imported from a meeting tool
def session_was_cancelled(title: str) -> str:
    return f"'{title}' was cancelled, so it has no attendance to import."


def session_cancelled_no_attendance(title: str) -> str:
    return f"'{title}' was cancelled, so there is no attendance to record."


def session_not_started(title: str) -> str:
    return f"'{title}' has not started yet; import its attendance report after the session."


def attendance_imported(
    *,
    title: str,
    cohort: str,
    tool: str,
    filename: str,
    minimum: str,
    recorded: list[str],
    already: list[str],
    below: list[str],
    unmatched: list[str],
    ambiguous: list[str],
    leads: list[str],
) -> str:
    lines = [f"Attendance for '{title}' ({cohort}) from the {tool} report {filename}, minimum {minimum} min:"]
    parts = [
        ("Recorded", recorded),
        ("Already recorded, unchanged", already),
        (f"Under {minimum} min, not recorded", below),
        ("Not matched to a learner, not recorded", unmatched),
        ("Matches several learners, not recorded", ambiguous),
        ("Leads of the cohort, not recorded", leads),
    ]
    lines += [f"• {label} ({len(items)}): {', '.join(items)}" for label, items in parts if items]
    if not recorded:
        lines.append("No new attendance was recorded.")
    return "\n".join(lines)


# ---------------------------------------------------------------------- files shared with the bot in a direct message
RECORDING_FORM_OPENED = (
    "Fill in the form to attach the recording and transcript, or share the transcript in our direct message with "
    "`recording <session> <link>` as the message."
)
SHARE_ONE_FILE = "Share one file per message, with what it is for as the message."
FILE_NEEDS_A_COMMAND = (
    "Thanks for the file. To use it, share it again with what it is for as the message, for example "
    "`recording kickoff https://…` (a transcript), `attendance kickoff` (a Zoom, Meet or Teams participant report) "
    "or `recap edit kickoff` (an edited recap)."
)
FILE_DOWNLOAD_REFUSED = "I was not allowed to download that file; the app needs the files:read permission."


def file_not_text(name: str, suffixes: str) -> str:
    return f"I can only read text files here ({suffixes}); '{name}' is not one. Share a recording as a link instead."


def file_too_big(name: str, megabytes: int) -> str:
    return f"'{name}' is larger than {megabytes} MB; transcripts and reports are text, well under that."


def file_download_failed(name: str) -> str:
    return f"I could not download '{name}'; please share it again."
