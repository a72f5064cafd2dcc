"""Real peers for integration tests: FreeRADIUS as an ISP's RADIUS server, eapol_test,
hostapd as a wired 802.1X NAS with wpa_supplicant as its client in network namespaces,
and a UDP relay that keeps what crosses the wire.

    from support.freeradius import FreeRadius, free_udp_port
    from support.eapol import run_eapol_test
    from support.netns import WiredLink
    from support.hostapd import Hostapd, WiredSupplicant
    from support.relay import UdpRelay

These helpers import nothing from pytest, so bench/ scripts can use them too. A
missing program raises ``MissingTool``; the tests turn that into a failure with
the message, never a skip.
"""
