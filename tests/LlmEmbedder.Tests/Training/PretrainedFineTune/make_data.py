#!/usr/bin/env python3
"""Writes the helpdesk retrieval set of PretrainedArcticFineTuneImprovesTests (corpus, train, held-out eval).

An internal IT knowledge base of a fictional company (all text written for this test). Articles name systems
only by internal codename ("Marlin", "Kestrel", ...), while employees describe a system by what it does
("the expense tool", "my mailbox"). Every system has articles about the same twelve kinds of problem, so articles
share almost all their vocabulary: a general-purpose encoder finds the right kind of problem but cannot tell which
codename is the expense tool. That mapping is this company's convention, and the training rows teach it, with hard
negatives from the same kind of problem on other systems and other problems on the same system. Held-out queries
use phrasings that no training query uses, and half of them are about articles that never occur in training
(neither as a positive nor as a negative), whose system and kind of problem the training rows do cover.

Deterministic: `python3 make_data.py` rewrites corpus.jsonl, train.jsonl and eval.jsonl beside this script.
"""
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 20240611

# codename, error-code prefix, owning support queue, how employees refer to the system (noun phrases)
SYSTEMS = [
    ("Marlin", "MRL", "Finance Systems", ["the expense tool", "the expense report site", "the reimbursement app"]),
    ("Kestrel", "KST", "Messaging", ["my work email", "the mail and calendar app", "my mailbox"]),
    ("Juniper", "JNP", "People Systems", ["the HR portal", "the leave request system", "the payslip site"]),
    ("Cedar", "CDR", "Collaboration", ["the shared drive", "our team file store", "the document library"]),
    ("Falcon", "FLC", "Collaboration", ["the video meeting app", "the video conferencing tool", "the meeting recorder"]),
    ("Sparrow", "SPR", "Collaboration", ["team chat", "the instant messaging app", "the chat client"]),
    ("Tundra", "TND", "Developer Platform", ["the build server", "the CI pipeline", "the build system"]),
    ("Quarry", "QRY", "Data Platform", ["the sales dashboard", "the reporting warehouse", "the business reporting site"]),
    ("Lantern", "LNT", "Collaboration", ["the intranet", "the company wiki", "the intranet site"]),
    ("Harbor", "HBR", "Service Management", ["the IT ticket system", "the helpdesk app", "the service desk portal"]),
    ("Atlas", "ATL", "Sales Systems", ["the CRM", "the customer database", "the sales account database"]),
    ("Bramble", "BRM", "Legal Systems", ["the contract database", "the contract signing tool", "the contract approval tool"]),
    ("Fjord", "FJD", "Collaboration", ["the project board", "the task tracker", "the planning tool"]),
    ("Wren", "WRN", "Finance Systems", ["the timesheet app", "the time tracking app", "the hours booking tool"]),
]

# Per kind of problem: two article variants (title, text) and query templates. The first three templates
# phrase the training queries; the last two are kept for held-out queries only.
PROBLEMS = [
    ("signin",
     [("{C}: sign-in rejected with {E}-401",
       "{E}-401 after the password prompt means a stale token. Sign out of {C}, clear the token under {C} Agent > "
       "Account and sign in again."),
      ("{C}: {E}-401 credentials not accepted",
       "Remove the stored {C} entry from the keychain, restart the {C} Agent and sign in again. Locked accounts "
       "are unlocked by the {Q} queue.")],
     ["I can't log in to {g}, it keeps saying my password is wrong",
      "login to {g} fails even though my password is correct",
      "{g} rejects my credentials every time I sign in",
      "getting an authorization error whenever I try to sign in to {g}",
      "{g} has refused my login since this morning"]),
    ("slow",
     [("{C}: degraded performance in long sessions",
       "{C} slows down once its cache passes 2 GB. Run {C} Agent > Maintenance > Rebuild Cache and restart."),
      ("{C}: response times above the {E} baseline",
       "Update {C} to the current build and rebuild its cache. Still slow? Send the {C} diagnostics bundle to the "
       "{Q} queue.")],
     ["{g} is extremely slow",
      "everything in {g} takes forever to load",
      "{g} has become really laggy over the last few days",
      "why is {g} so sluggish",
      "the performance of {g} is terrible today"]),
    ("crash",
     [("{C}: client exits immediately on launch",
       "A corrupted profile makes {C} close within seconds. Rename the {C} profile folder and relaunch to "
       "regenerate it."),
      ("{C}: fatal error {E}-500 at startup",
       "{E}-500 means {C} cannot read its profile. Move the {C} profile folder away and start again; send the crash "
       "dump to the {Q} queue if it returns.")],
     ["{g} crashes as soon as I open it",
      "{g} won't start, the window just closes",
      "{g} keeps crashing on startup",
      "when I open {g} the window vanishes after a second",
      "{g} quits right after launching"]),
    ("update",
     [("{C}: error {E}-712 after upgrading to release 4.2",
       "Machines that skipped {C} 4.1 show {E}-712. Run the {C} repair tool from Software Center and reboot; "
       "rolling back is not supported."),
      ("{C}: {E}-730 following the monthly upgrade",
       "The monthly {C} upgrade cannot convert very old settings. Install the {C} repair package from Software "
       "Center and reboot.")],
     ["{g} broke after the latest update",
      "since the update {g} throws an error",
      "after upgrading {g} I get a strange error code",
      "the new version of {g} doesn't work for me",
      "{g} stopped working after last night's upgrade"]),
    ("sync",
     [("{C}: changes not appearing on other devices",
       "{C} syncs every 15 minutes. Open {C} > Sync Status, resolve the conflicting items and select Sync Now."),
      ("{C}: sync status shows {E}-409 conflicts",
       "{E}-409 means the same {C} item was edited on two devices. Keep one version in {C} > Sync Status and "
       "syncing resumes.")],
     ["my changes in {g} don't show up on my other computer",
      "{g} isn't syncing",
      "things I save in {g} on my laptop are missing on my phone",
      "{g} shows old data on my second device",
      "updates in {g} aren't being synchronized between devices"]),
    ("access",
     [("{C}: requesting access or a higher role",
       "Request the '{C} - Standard User' role in the access portal with your manager as approver; it applies "
       "within an hour."),
      ("{C}: {E}-403 not authorised for this workspace",
       "{E}-403 means you have no {C} role yet. Your manager approves '{C} - Standard User'; elevated roles need "
       "the {Q} queue.")],
     ["how do I get access to {g}",
      "I need permission to use {g} for my new job",
      "{g} says I am not authorized to see this",
      "who approves access to {g}",
      "my new colleague needs an account for {g}"]),
    ("cert",
     [("{C}: certificate warning or untrusted connection",
       "The device lacks the current internal root certificate. Run 'Update Trust Store' from Software Center and "
       "restart {C}."),
      ("{C}: {E}-495 server identity could not be verified",
       "{E}-495 means an expired root certificate. Install the new trust bundle and restart {C}; never click "
       "through the warning.")],
     ["{g} shows a security warning about a certificate",
      "{g} says the connection is not trusted",
      "certificate error when I open {g}",
      "I got a scary warning in {g} that the site is not secure",
      "{g} complains that the certificate is invalid"]),
    ("install",
     [("{C}: setting up on a new laptop",
       "New laptops get {C} within 24 hours of enrolment. To install sooner, search for {C} in Software Center "
       "and choose Install."),
      ("{C}: installing on a replacement machine",
       "{C} is installed only through Software Center. If {C} is missing from the catalogue, the laptop is not "
       "enrolled yet.")],
     ["how do I install {g} on my new laptop",
      "my new computer doesn't have {g}",
      "setting up {g} on a replacement machine",
      "where can I download {g}",
      "{g} is missing on my freshly delivered laptop"]),
    ("notify",
     [("{C}: alerts not delivered",
       "Turn on Notifications under {C} > Preferences and leave Focus mode. Rules aimed at a retired team are "
       "dropped silently."),
      ("{C}: notification channel muted after migration",
       "The {C} migration reset personal notifications to muted. Switch the channels back on under {C} > "
       "Preferences and send a test.")],
     ["I'm not getting notifications from {g}",
      "{g} stopped alerting me",
      "I no longer receive any alerts from {g}",
      "notifications from {g} never arrive",
      "why don't I get reminders from {g} anymore"]),
    ("quota",
     [("{C}: usage limit reached",
       "A full {C} allowance makes {C} read-only. Archive the largest items listed under {C} > Usage."),
      ("{C}: {E}-507 allowance exceeded",
       "{E}-507: your {C} allowance is used up. Archive old items from {C} > Usage; larger allowances go through "
       "the {Q} queue.")],
     ["{g} says I'm out of space",
      "the allowance in {g} is full",
      "I hit the limit in {g} and can't save anything",
      "how do I get more room in {g}",
      "{g} tells me I've exceeded my quota"]),
    ("restore",
     [("{C}: recovering deleted items",
       "Deleted {C} items stay in {C} > Recycle Bin for 30 days. Select them and choose Restore."),
      ("{C}: {E}-410 item permanently removed",
       "After 30 days {C} purges deleted items. The {Q} queue can restore them from the nightly {C} snapshot "
       "within 90 days.")],
     ["I accidentally deleted something in {g}, can I get it back",
      "how do I undo a deletion in {g}",
      "something I removed from {g} last week is gone",
      "recover an item I deleted by mistake in {g}",
      "is there a trash folder in {g}"]),
    ("export",
     [("{C}: exporting to CSV",
       "Choose {C} > Export, pick the columns and the date range and download the CSV file."),
      ("{C}: {E}-413 export too large",
       "{C} exports stop at 100,000 rows with {E}-413. Narrow the date range or schedule a bulk export through the "
       "{Q} queue.")],
     ["how can I export my data from {g} to Excel",
      "I need to download a spreadsheet out of {g}",
      "getting a list out of {g} as a file",
      "is there a way to save what I see in {g} as CSV",
      "the export from {g} fails because it is too big"]),
]

TRAIN_TEMPLATES = 3


def capitalize(text):
    return text[0].upper() + text[1:]


def main():
    rng = random.Random(SEED)
    corpus = []  # rows of {title, text}
    index_of = {}  # (system, problem) -> corpus row
    for s, (code, prefix, queue, _) in enumerate(SYSTEMS):
        for p, (_, variants, _) in enumerate(PROBLEMS):
            title, text = variants[(s + p) % 2]
            fill = dict(C=code, E=prefix, Q=queue)
            index_of[(s, p)] = len(corpus)
            corpus.append({"title": title.format(**fill), "text": text.format(**fill)})

    # 30 articles that never occur in training: two or three per kind of problem, two or three per system.
    unseen = set()
    per_system = {s: 0 for s in range(len(SYSTEMS))}
    for p in range(len(PROBLEMS)):
        candidates = list(range(len(SYSTEMS)))
        rng.shuffle(candidates)
        candidates.sort(key=lambda s: per_system[s])
        for s in candidates[: 3 if p < 6 else 2]:
            unseen.add((s, p))
            per_system[s] += 1
    seen = [(s, p) for s in range(len(SYSTEMS)) for p in range(len(PROBLEMS)) if (s, p) not in unseen]

    def query(s, p, template):
        phrase = rng.choice(SYSTEMS[s][3])
        return capitalize(PROBLEMS[p][2][template].format(g=phrase))

    def key(row):
        return corpus[row]["title"] + " " + corpus[row]["text"]

    train = []
    for s, p in seen:
        templates = list(range(TRAIN_TEMPLATES))
        rng.shuffle(templates)
        for template in templates[: 2 if rng.random() < 0.75 else 1]:
            same_problem = [(o, p) for o in range(len(SYSTEMS)) if o != s and (o, p) not in unseen]
            same_system = [(s, o) for o in range(len(PROBLEMS)) if o != p and (s, o) not in unseen]
            others = [x for x in seen if x[0] != s and x[1] != p]
            negatives = rng.sample(same_problem, 4) + rng.sample(same_system, 3) + rng.sample(others, 1)
            train.append({
                "query": query(s, p, template),
                "pos": [key(index_of[(s, p)])],
                "neg": [key(index_of[x]) for x in negatives],
                "task": "qa",
            })
    rng.shuffle(train)

    # Held-out: every unseen article, and as many seen ones, each asked with a held-out template.
    seen_for_eval = rng.sample(seen, len(unseen))
    evaluation = []
    for s, p in sorted(unseen) + sorted(seen_for_eval):
        template = TRAIN_TEMPLATES + rng.randrange(len(PROBLEMS[p][2]) - TRAIN_TEMPLATES)
        evaluation.append({
            "query": query(s, p, template),
            "pos_index": [index_of[(s, p)]],
            "query_id": f"{SYSTEMS[s][0].lower()}-{PROBLEMS[p][0]}" + ("-unseen" if (s, p) in unseen else ""),
            "task": "qa",
        })
    rng.shuffle(evaluation)

    for name, rows in [("corpus.jsonl", corpus), ("train.jsonl", train), ("eval.jsonl", evaluation)]:
        with open(os.path.join(HERE, name), "w", encoding="utf-8", newline="\n") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"corpus {len(corpus)}, train {len(train)}, eval {len(evaluation)} ({len(unseen)} about unseen articles)")


if __name__ == "__main__":
    main()
