"""The shared service layer of the API (app/) and the worker (worker/).

It holds what both sides need and neither owns: the settings (`config`), the database
(models, sessions, migrations, and the repositories for jobs, uploads and API keys under
`db/` and `keys`), the job states, the queue that wakes a worker (`queue`) and the embedded
broker (`broker`). It imports akd_core only, never app, worker or akd_tools.
"""
