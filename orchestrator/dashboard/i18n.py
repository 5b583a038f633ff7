"""The dashboard's words in French (default) and English. Status names (REUSSIE, ECHEC, ...)
are the product's own and stay as they are in both languages."""

from __future__ import annotations

WORDS: dict[str, dict[str, str]] = {
    "todo": {"fr": "À traiter", "en": "To handle"},
    "clients": {"fr": "Clients", "en": "Clients"},
    "agents": {"fr": "Agents", "en": "Agents"},
    "agents_title": {"fr": "Agents des sites", "en": "Site agents"},
    "site": {"fr": "Site", "en": "Site"},
    "agent": {"fr": "Agent", "en": "Agent"},
    "version": {"fr": "Version", "en": "Version"},
    "last_contact": {"fr": "Dernier contact", "en": "Last seen"},
    "running_jobs": {"fr": "En cours", "en": "Running"},
    "queued_runs": {"fr": "En attente d'envoi", "en": "Waiting to be sent"},
    "agent_silent_since": {"fr": "silencieux depuis {ago} (attendu toutes les {n}\u00a0min)",
                           "en": "silent for {ago} (expected every {n} min)"},
    "agent_never_enrolled": {"fr": "aucun agent enrôlé\u00a0: rien de ce site n'arrive "
                                   "(hvbackup agent token --site {site})",
                             "en": "no agent enrolled: nothing of this site arrives "
                                   "(hvbackup agent token --site {site})"},
    "agent_revoked": {"fr": "révoqué", "en": "revoked"},
    "agent_idle": {"fr": "rien", "en": "nothing"},
    "no_agents": {"fr": "Aucun site n'a d'agent\u00a0: tout tourne sur le serveur central.",
                  "en": "No site has an agent: everything runs on the central server."},
    "client": {"fr": "Client", "en": "Client"},
    "job": {"fr": "Tâche", "en": "Job"},
    "jobs": {"fr": "Tâches", "en": "Jobs"},
    "status": {"fr": "Statut", "en": "Status"},
    "baie": {"fr": "Baie", "en": "Baie"},
    "all": {"fr": "Tous", "en": "All"},
    "filter": {"fr": "Filtrer", "en": "Filter"},
    "failing_since": {"fr": "Depuis", "en": "Since"},  # a failure, a late job, an alert
    "runs_in_a_row": {"fr": "{n} exécutions de suite", "fr_one": "{n} exécution",
                      "en": "{n} runs in a row", "en_one": "{n} run"},
    "my_backups": {"fr": "Mes sauvegardes", "en": "My backups"},
    "same_cause": {"fr": "{n} tâches, une même cause\u00a0: {host} ({code})",
                   "en": "{n} jobs, one cause: {host} ({code})"},
    "acknowledge_all": {"fr": "Prendre en charge les {n}", "en": "Acknowledge all {n}"},
    "relaunch": {"fr": "Relancer", "en": "Run again"},
    "last_success": {"fr": "Dernière réussite", "en": "Last success"},
    "never_seen": {"fr": "aucune récente", "en": "none recently"},
    "error": {"fr": "Erreur", "en": "Error"},
    "acknowledged": {"fr": "Pris en charge", "en": "Acknowledged"},
    "scheduler_seen": {"fr": "planificateur\u00a0: dernier passage il y a {ago}",
                       "en": "scheduler: last seen {ago} ago"},
    "scheduler_leads": {"fr": "planificateur\u00a0: {who}, dernier passage il y a {ago}",
                        "en": "scheduler: {who}, last seen {ago} ago"},
    "scheduler_who": {"fr": "{host} (pid {pid})", "en": "{host} (pid {pid})"},
    "scheduler_never": {"fr": "planificateur\u00a0: jamais vu (hvbackup run ne tourne pas)",
                        "en": "scheduler: never seen (hvbackup run is not running)"},
    # {n} counts every scheduled run missed, the one of {since} included.
    # {n} counts every scheduled run missed, the one of {since} included.
    "late": {"fr": "En retard\u00a0: {n} exécutions prévues n'ont pas eu lieu, la première le "
                   "{since}\u202f; le planificateur tourne-t-il\u202f?",
             "fr_one": "En retard\u00a0: l'exécution prévue le {since} n'a pas eu lieu\u202f; "
                       "le planificateur tourne-t-il\u202f?",
             "en": "Late: {n} scheduled runs did not happen, the first on {since}; is the "
                   "scheduler running?",
             "en_one": "Late: the run scheduled on {since} did not happen; is the scheduler "
                       "running?"},
    "late_all": {"fr": "En retard\u00a0: aucune exécution prévue n'a eu lieu depuis le {since}",
                 "en": "Late: no scheduled run has happened since {since}"},
    "missed_n": {"fr": "{n} manquées", "fr_one": "{n} manquée", "en": "{n} missed"},
    "same_cause_scheduler": {"fr": "{n} tâches, une même cause\u00a0: le planificateur ne "
                                   "tourne pas",
                             "en": "{n} jobs, one cause: the scheduler is not running"},
    "same_cause_late": {"fr": "{n} tâches en retard sur {host}",
                        "en": "{n} jobs late on {host}"},
    "acknowledge_others": {"fr": "Prendre en charge les {n} autres",
                           "fr_one": "Prendre en charge l'autre",
                           "en": "Acknowledge the other {n}", "en_one": "Acknowledge the other"},
    "status_REUSSIE": {"fr": "Réussie", "en": "Succeeded"},
    "status_ECHEC": {"fr": "Échec", "en": "Failed"},
    "status_NON EXECUTEE": {"fr": "Non exécutée", "en": "Not run"},
    "status_AVERTISSEMENT": {"fr": "Avertissement", "en": "Warning"},
    "status_INHABITUELLE": {"fr": "Inhabituelle", "en": "Unusual"},
    "status_quota": {"fr": "Volume souscrit dépassé", "en": "Subscribed volume exceeded"},
    "status_report": {"fr": "Rapport non envoyé", "en": "Report not sent"},
    "status_agent": {"fr": "Agent de site injoignable", "en": "Site agent silent"},
    "late_short": {"fr": "en retard depuis le {since}", "en": "late since {since}"},
    "run_requested_no_scheduler": {
        "fr": "Lancement demandé, mais aucun planificateur ne tourne ({seen})\u00a0: la tâche "
              "ne démarrera qu'au retour de « hvbackup run ». Prévenez le technicien "
              "d'astreinte.",
        "en": "Run requested, but no scheduler is running ({seen}): the job will start only "
              "when 'hvbackup run' is back. Tell the on-call technician."},
    "acknowledged_by": {"fr": "{who}, le {when}\u00a0: {comment}",
                        "en": "{who}, on {when}: {comment}"},
    "acknowledge": {"fr": "Prendre en charge", "en": "Acknowledge"},
    "comment": {"fr": "Commentaire", "en": "Comment"},
    "nothing_to_do": {"fr": "Rien à traiter : toutes les tâches ont réussi.",
                      "en": "Nothing to handle: every job succeeded."},
    "ago": {"fr": "il y a", "en": "ago"},
    "login": {"fr": "Connexion", "en": "Log in"},
    "logout": {"fr": "Déconnexion", "en": "Log out"},
    "username": {"fr": "Identifiant", "en": "User name"},
    "password": {"fr": "Mot de passe", "en": "Password"},
    "bad_login": {"fr": "Identifiant ou mot de passe incorrect.",
                  "en": "Wrong user name or password."},
    "throttled": {"fr": "Trop d'essais. Réessayez dans {minutes} min.",
                  "en": "Too many attempts. Try again in {minutes} min."},
    "last_30_days": {"fr": "30 derniers jours", "en": "Last 30 days"},
    "volume": {"fr": "Volume stocké par baie", "en": "Volume stored per baie"},
    "quota": {"fr": "Volume souscrit", "en": "Subscribed volume"},
    "full_by": {"fr": "plein vers le", "en": "full by"},
    "quota_ok": {"fr": "dans le volume souscrit", "en": "within the subscribed volume"},
    "quota_over": {"fr": "dépassé (moins de 10 %)", "en": "over (less than 10 %)"},
    "quota_warning": {"fr": "dépassé de plus de 10 % : client prévenu, 30 jours pour agir",
                      "en": "over by more than 10 %: client told, 30 days to act"},
    "quota_blocked": {"fr": "sauvegardes arrêtées : dépassement depuis plus de 30 jours",
                      "en": "backups stopped: over for more than 30 days"},
    "quota_tier_due": {"fr": "dépassé depuis plus de 30 jours : passage à la tranche supérieure",
                       "en": "over for more than 30 days: moving to the next tier"},
    "until": {"fr": "jusqu'au", "en": "until"},
    "tier_moved": {"fr": "Tranche de {old} à {new}, facturée à partir du {since} "
                         "(décidé le {on}, après 30 jours au-dessus).",
                   "en": "Tier moved from {old} to {new}, billed from {since} "
                         "(decided on {on}, after 30 days over)."},
    "quota_none": {"fr": "pas de volume souscrit", "en": "no subscribed volume"},
    "no_quota": {"fr": "pas de volume souscrit", "en": "no subscribed volume"},
    "restore_points": {"fr": "Points de restauration", "en": "Restore points"},
    "copies": {"fr": "Copies", "en": "Copies"},
    "parity_identical": {"fr": "identiques", "en": "identical"},
    "parity_different": {"fr": "différentes", "en": "different"},
    "parity_unknown": {"fr": "pas de copie depuis 30 jours", "en": "no copy for 30 days"},
    "parity_single": {"fr": "une seule copie", "en": "single copy"},
    "last_run": {"fr": "Dernière exécution", "en": "Last run"},
    "run_now": {"fr": "Lancer maintenant", "en": "Run now"},
    "run_requested": {"fr": "Lancement demandé : le planificateur le démarre à son prochain "
                            "passage (moins d'une minute).",
                      "en": "Run requested: the scheduler starts it at its next pass "
                            "(under a minute)."},
    "pending": {"fr": "lancement demandé", "en": "run requested"},
    "run": {"fr": "Exécution", "en": "Run"},
    "steps": {"fr": "Étapes", "en": "Steps"},
    "step": {"fr": "Étape", "en": "Step"},
    "object": {"fr": "Objet", "en": "Object"},
    "started": {"fr": "Début", "en": "Started"},
    "never_started": {"fr": "prévue le {at}, elle n'a pas démarré",
                      "en": "due {at}, it never started"},
    "finished": {"fr": "Fin", "en": "Finished"},
    "duration": {"fr": "Durée", "en": "Duration"},
    "read": {"fr": "Lu", "en": "Read"},
    "new": {"fr": "Nouveau", "en": "New"},
    "sent": {"fr": "Envoyé", "en": "Sent"},
    "files": {"fr": "Fichiers", "en": "Files"},
    "log": {"fr": "Journal", "en": "Log"},
    "runbook": {"fr": "Que faire :", "en": "What to do:"},
    "what_to_check": {"fr": "Que vérifier", "en": "What to check"},
    "consistency": {"fr": "Cohérence", "en": "Consistency"},
    "trigger": {"fr": "Déclenchement", "en": "Trigger"},
    "unusual": {"fr": "INHABITUELLE", "en": "UNUSUAL"},
    "not_found": {"fr": "Introuvable.", "en": "Not found."},
    "forbidden": {"fr": "Cette page ne vous est pas accessible.",
                  "en": "This page is not yours to see."},
    "csrf": {"fr": "Le formulaire a expiré : rechargez la page et recommencez.",
             "en": "The form expired: reload the page and try again."},
    "comment_needed": {"fr": "Un commentaire est nécessaire (1000 caractères au plus).",
                       "en": "A comment is needed (1000 characters at most)."},
    "auto_refresh": {"fr": "Actualisé automatiquement chaque minute",
                     "en": "Refreshes every minute"},
    "none": {"fr": "aucun", "en": "none"},
    "bad_month": {"fr": "Mois invalide : donnez-le sous la forme AAAA-MM (par exemple 2026-11).",
                  "en": "Invalid month: give it as YYYY-MM (e.g. 2026-11)."},
    "by": {"fr": "par", "en": "by"},
    "run_of": {"fr": "Sauvegarde du {when}", "en": "Backup of {when}"},
    "run_id": {"fr": "réf. {uid}", "en": "ref. {uid}"},
    "missed_day": {"fr": "non exécutée", "en": "not run"},
    "no_run_day": {"fr": "pas de sauvegarde prévue", "en": "no backup scheduled"},
    "what_happened": {"fr": "Ce qui s'est passé", "en": "What happened"},
    "support": {"fr": "Une question sur vos sauvegardes\u202f? {msp} vous répond{phone}.",
                "en": "A question about your backups? {msp} answers{phone}."},
    "support_phone": {"fr": " au {phone}", "en": " on {phone}"},
    "support_mail": {"fr": " à {mail}", "en": " at {mail}"},
    "support_title": {"fr": "Assistance", "en": "Support"},
    "every_day": {"fr": "chaque jour à {at}", "en": "every day at {at}"},
    "weekdays": {"fr": "du lundi au vendredi à {at}", "en": "Monday to Friday at {at}"},
    "weekends": {"fr": "le samedi et le dimanche à {at}", "en": "Saturday and Sunday at {at}"},
    "some_days": {"fr": "le {days} à {at}", "en": "on {days} at {at}"},
}

DAY_NAMES = {"fr": ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
             "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
                    "Sunday")}


# What the history records in English words (step names and states, triggers, consistencies),
# shown in the page's language; a value missing here is shown as it is.
TERMS: dict[str, dict[str, dict[str, str]]] = {
    "step": {
        "connect": {"fr": "connexion à l'hôte", "en": "connect to the host"},
        "sweep leftovers": {"fr": "nettoyage des restes", "en": "sweep leftovers"},
        "checkpoint": {"fr": "point de contrôle", "en": "checkpoint"},
        "remove checkpoint": {"fr": "suppression du point de contrôle",
                              "en": "remove checkpoint"},
        "read": {"fr": "lecture", "en": "read"},
        "sql backup": {"fr": "sauvegarde SQL", "en": "SQL backup"},
        "remove staging": {"fr": "suppression des fichiers de transit",
                           "en": "remove staging"},
        "shadow copy": {"fr": "cliché instantané", "en": "shadow copy"},
        "remove shadow copy": {"fr": "suppression du cliché instantané",
                               "en": "remove shadow copy"},
        "commit snapshot": {"fr": "enregistrement du point de restauration",
                            "en": "commit restore point"},
        "copy": {"fr": "copie", "en": "copy"},
        "retention": {"fr": "rétention", "en": "retention"},
        "gather orchestrator files": {"fr": "collecte des fichiers de l'orchestrateur",
                                      "en": "gather orchestrator files"},
    },
    "step_status": {
        "ok": {"fr": "réussie", "en": "ok"},
        "failed": {"fr": "échouée", "en": "failed"},
        "running": {"fr": "en cours", "en": "running"},
        "skipped": {"fr": "sautée", "en": "skipped"},
        "warning": {"fr": "à vérifier", "en": "warning"},
    },
    "trigger": {
        "schedule": {"fr": "planifié", "en": "scheduled"},
        "dashboard": {"fr": "tableau de bord", "en": "dashboard"},
        "manual": {"fr": "manuel (ligne de commande)", "en": "manual (command line)"},
        "self-backup": {"fr": "sauvegarde de l'orchestrateur", "en": "orchestrator self-backup"},
    },
    "consistency": {
        "application": {"fr": "applicative (VSS)", "en": "application (VSS)"},
        "crash": {"fr": "sans VSS (crash-consistent)", "en": "crash-consistent (no VSS)"},
        "none": {"fr": "fichiers tels quels", "en": "files as they are"},
    },
}


def schedule_words(text: str, language: str) -> str:
    """A job's schedule ("weekdays 20:00") as a client reads it ("du lundi au vendredi à
    20:00")."""
    from orchestrator.schedule.spec import ScheduleSyntaxError, parse_schedule

    try:
        schedule = parse_schedule(text)
    except ScheduleSyntaxError:
        return text
    at = schedule.at.strftime("%H:%M")
    if schedule.days == frozenset(range(7)):
        return translate("every_day", language, at=at)
    if schedule.days == frozenset(range(5)):
        return translate("weekdays", language, at=at)
    if schedule.days == frozenset({5, 6}):
        return translate("weekends", language, at=at)
    names = DAY_NAMES.get(language, DAY_NAMES["fr"])
    days = [names[d] for d in sorted(schedule.days)]
    joined = days[0] if len(days) == 1 else ", ".join(days[:-1]) + (
        " et " if language == "fr" else " and ") + days[-1]
    return translate("some_days", language, days=joined, at=at)


def term(kind: str, value: str | None, language: str) -> str:
    """``value`` (a step name, a step state, a trigger, a consistency) in ``language``."""
    if value is None:
        return "-"
    entry = TERMS.get(kind, {}).get(value)
    return value if entry is None else entry.get(language, value)


def translate(key: str, language: str, **values: object) -> str:
    entry = WORDS.get(key)
    if entry is None:
        return key
    text = entry.get(language) or entry["fr"]
    count = values.get("n")
    # One thing is singular (in French, zero too): "1 exécution", "2 exécutions".
    if isinstance(count, int) and (count == 1 or (count == 0 and language == "fr")):
        text = entry.get(f"{language}_one") or text
    return text.format(**values) if values else text
