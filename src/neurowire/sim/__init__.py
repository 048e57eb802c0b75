"""The parts of :class:`~neurowire.Simulator`: the step function (:mod:`.step`), the block
runners of the engines (:mod:`.runners`), the rule schedule (:mod:`.schedule`), recording
(:mod:`.records`), the state (:mod:`.state`), checks of what a run is given (:mod:`.checks`)
and timers (:mod:`.timers`)."""
