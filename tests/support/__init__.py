"""Real peers for integration tests: FreeRADIUS as an ISP's RADIUS server, eapol_test.

    from support.freeradius import FreeRadius, free_udp_port
    from support.eapol import run_eapol_test

These helpers import nothing from pytest, so bench/ scripts can use them too. A
missing program raises ``MissingTool``; the tests turn that into a failure with
the message, never a skip.
"""
