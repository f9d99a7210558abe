"""What an operator or technician installs and runs: decoding scans, enrolling and flashing devices, the test
sheet, the platform simulator. The wheel holds this package; nothing here imports the test harness."""
