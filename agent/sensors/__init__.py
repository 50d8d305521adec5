"""Sensor sources behind one small interface (agent.sensors.base.Source).

- sim: the deterministic physics model of agent.simulator plus appliance telemetry
- iio: Linux IIO sysfs (accelerometer and gyroscope)
- mpu6050: an MPU-6050 on I2C through smbus2
- replay: a recorded session file
"""
