"""Positioning: RSSI -> distance -> plan position, shared by the agent and the aggregator.

smoothing.RssiSmoother       robust time-decayed RSSI per (device, receiver)
calibration.LogDistanceModel distance from RSSI and its uncertainty (sigma_m); MonotoneModel
multilateration.locate       robust position from receiver distances (Anchor -> Estimate)
receivers.anchor_for         a named receiver's RSSI -> Anchor (unknown id / bad RSSI -> BadReading)
motion.MotionFilter          walking-speed Kalman filter, optional fixed-lag smoothing
locator.Locator              one device's track: the above combined, receiver weights from the prior
zones.ZoneTracker            zone with hysteresis
zone_filter.ZoneFilter       zone HMM over a motion filter's state, PIRs, touching zones
grid_filter.GridFilter       grid Bayes filter on the RSSI likelihood: position, zone (aggregator; numpy)
scenario                     the ESPresense reference scenario, for the benchmark and tests
See docs/POSITIONING.md.
"""
