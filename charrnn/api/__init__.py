"""The calls a Python user makes to do what the commands do: train (`run`), plan, prepare text and
export (`files`), with the options written once (`options`), the events a run reports (`events`)
and run preparation (`prepare`). Above `data`, `training` and `infer`; `charrnn` loads it lazily.

Nothing here prints or exits: the CLI and `charrnn.render` show what the events say.
"""
