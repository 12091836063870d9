"""The lab, live: one page that shows every service, instance, cache, stream and the Redis server, pushed
over Server-Sent Events once per second (``labkit dashboard``; started by ``start-all`` on
``LAB_DASHBOARD_PORT``, 3010 by default).

``collect.py`` reads what the lab already exposes, ``hub.py`` shares one collection loop among all open
pages, ``app.py`` serves the page, the stream and the system user's actions; ``static/`` is the page.
"""
