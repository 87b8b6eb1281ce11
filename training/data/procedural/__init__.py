"""Procedural two-person interactions written in InterHuman's raw layout.

A scene script (``interactions``) says what each person intends frame by frame: where the
pelvis goes, where it faces, how far it bends, where each palm should be. ``gait`` turns
the pelvis path into footsteps, ``body`` turns intents into joint rotations with two-bone
IK and the skeleton's forward kinematics, ``texts`` describes the scene and ``writer``
stores a dataset. Entry point: ``python -m training.data.synthetic``.
"""
