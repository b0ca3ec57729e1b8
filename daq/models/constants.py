"""Physical constants (SI) shared by the models and the simulated cell (science.md, preamble)."""

F = 96485.33  # C/mol, Faraday constant
R = 8.314  # J/(mol K), gas constant
V_M_LI = 1.30e-5  # m^3/mol, molar volume of Li
M_LI = 6.94e-3  # kg/mol, molar mass of Li
RHO_LI = 534.0  # kg/m^3, density of Li
RESISTIVITY_LI = 9.28e-8  # ohm m, electrical resistivity of Li
T_ROOM = 298.15  # K
