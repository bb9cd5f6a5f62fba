"""School-bus route planning (issue 21), pure like the rest of ``routing/``.

``model`` holds the problem and the plan, ``reader`` parses the Park–Tae–Kim benchmark folder
format from text, ``routes`` builds each school's routes with a VRP library, ``chaining`` joins
routes into bus schedules (fewest buses, exactly, then least empty driving), ``solver`` runs the
two under one time limit, and ``checker`` verifies any plan written in the SPEC's JSON form,
independently of how it was made.
"""
