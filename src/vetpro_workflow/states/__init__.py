"""The two workflows as data (states, triggers, actors, guards) and the pure rules they check.

Nothing here touches the database, the mail or Prefect: the service layer hands in snapshots.
"""
