"""Makes the hub databases that this release's predecessor (JupyterHub 5) left at a site, for
the upgrade test (tests/integration/test_upgrade.py). Run with JupyterHub 5's Python:

    python3 -m venv /tmp/jh5 && /tmp/jh5/bin/pip install 'jupyterhub>=5.3,<6' 'psycopg[binary]'
    /tmp/jh5/bin/python tests/data/predecessor_db/make.py sqlite:///tests/data/predecessor_db/jupyterhub.sqlite
    /tmp/jh5/bin/python tests/data/predecessor_db/make.py postgresql+psycopg://USER@/DB  # then pg_dump --no-owner

It holds what a running site has: users, a server with the spawner's state (a SLURM job id that
no run of the suite reaches, so the hub finds it ended) and a token; the test checks that each
survives the upgrade."""

import sys

import jupyterhub
from jupyterhub import orm

db = orm.new_session_factory(sys.argv[1])()
db.add(orm.OAuthClient(identifier="jupyterhub"))
for name in ("alice", "bob"):
    db.add(orm.User(name=name))
db.commit()
alice = db.query(orm.User).filter_by(name="alice").one()
server = orm.Server(ip="10.77.0.11", port=47123, base_url="/user/alice/")
db.add(server)
db.add(orm.Spawner(user=alice, name="", server=server, state={"job_id": "9999999", "ip": "10.77.0.11"}))
db.commit()
alice.new_api_token("predecessor-token-0123456789abcdef", note="made by JupyterHub 5", scopes=[])
db.commit()
print(f"JupyterHub {jupyterhub.__version__}:", db.execute(orm.text("SELECT version_num FROM alembic_version")).scalar())
