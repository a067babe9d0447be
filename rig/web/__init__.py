"""The line in the browser: a station server per bench (``rig station serve``) and a line view over the results
store (``rig line serve``), both Starlette apps with server-rendered pages (Jinja2) and server-sent events.

A station server runs a plan as the ``rig`` command does, in a child process (``python -m rig signoff --json …``)
with one extra pytest plugin (:mod:`rig.web.runplugin`) that reports each step and carries the operator's prompts
to the browser over a pair of pipes (:mod:`rig.web.channel`). Nothing else in rig imports this package.
"""
