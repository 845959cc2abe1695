"""Grid protection: grid-code profiles as data, interface protection (one criterion per
module) with ride-through arbitration, and anti-islanding."""
