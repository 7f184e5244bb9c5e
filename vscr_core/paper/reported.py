"""Every number this project quotes from the paper (Teng et al., "Viewpoint and Scale Consistency
Reinforcement for UAV Vehicle Re-Identification", IJCV 2021), and nowhere else: the tables and
figures that notebooks compare with, and the data set facts that the paper's protocols rest on.
tests/test_reported.py checks each one against the paper's text. Numbers are percentages unless
said otherwise; None stands for a "–" in the paper.
"""

# Table 1 (identities, images, distractors, cameras, views, year).
TABLE1 = (
    ("VeRi-776", 776, 51_035, 0, "fixed", "3", "2016"),
    ("VehicleID", 26_267, 221_763, 0, "fixed", "2", "2016"),
    ("VERI-Wild", 40_671, 416_314, 0, "fixed", "flexible", "2019"),
    ("UAV-VeID", 4_601, 41_917, 300_000, "mobile UAV", "flexible", "–"),
)
# UAV-VeID's split (Sect. 3.2.2): identities and images.
UAV_VEID_SPLITS = {"train": (1_797, 18_709), "val": (596, 4_150),
                   "test": (2_208, 19_058), "distractors": (None, 300_000),
                   "all": (4_601, 41_917)}

# Sect. 5.3.1 (Fig. 6): view accuracy on VeRi-776 (3 view classes) trained on 25 % of its labels.
FIG6_VERI776_25 = 98.29

# Table 2: UAV-VeID validation and VeRi-776, (rank-1, mAP).
TABLE2 = {
    "baseline": {"uav_veid": (83.52, 89.01), "veri776": (88.25, 63.01)},
    "t2_b": {"uav_veid": (85.73, 90.29), "veri776": (88.51, 64.33)},
    "t2_c": {"uav_veid": (86.21, 91.06), "veri776": (88.72, 64.56)},
    "t2_d": {"uav_veid": (88.02, 92.36), "veri776": (90.25, 66.36)},
    "t2_e": {"uav_veid": (89.32, 93.03), "veri776": (91.78, 68.95)},
    "t2_f": {"uav_veid": (89.41, 93.07), "veri776": (91.35, 68.06)},
    "multi_scale": {"uav_veid": (91.32, 94.76), "veri776": (92.96, 72.18)},
    "t2_h": {"uav_veid": (91.33, 94.28), "veri776": (93.01, 72.29)},
}
# Tables 3 and 4: (rank-1, rank-5, rank-10, mAP) per data set. Table 3 is UAV-VeID validation
# only; its baseline and 4-view rows are Table 4's (a) and (b) there.
TABLE4 = {
    "baseline": {"uav_veid": (83.52, 95.97, 98.13, 89.01), "veri776": (88.25, 94.69, 96.55, 63.01),
                 "vehicleid": (66.96, 77.39, 82.73, 71.27)},
    "view3": {"uav_veid": (85.71, 97.68, 98.76, 90.97)},
    "view_adversary": {"uav_veid": (86.05, 98.03, 99.01, 91.29),
                       "veri776": (91.35, 96.18, 97.15, 68.35),
                       "vehicleid": (69.94, 81.02, 85.01, 75.76)},
    "multi_scale": {"uav_veid": (91.32, 98.63, 99.16, 94.76),
                    "veri776": (92.96, 96.89, 97.86, 72.18),
                    "vehicleid": (73.49, 85.16, 89.28, 77.71)},
    "vscr": {"uav_veid": (91.98, 98.86, 99.37, 95.21), "veri776": (94.11, 97.85, 98.56, 75.53),
             "vehicleid": (74.58, 87.12, 92.09, 78.78)},
}

# Table 5, UAV-VeID test split: (method, r=1, r=5, r=10). The paper gives no mAP here.
TABLE5 = (
    ("VGG_CNN_M (Chatfield et al. 2014)", 28.34, 39.27, 43.48),
    ("Siamese-Visual (Shen et al. 2017)", 25.98, 41.98, 50.61),
    ("RAM (Liu et al. 2018)", 45.26, 59.35, 64.07),
    ("SCAN (Teng et al. 2018)", 40.49, 53.74, 60.55),
    ("GoogLeNet (Szegedy et al. 2015b)", 45.23, 64.88, 70.38),
    ("CN-Nets (Yao et al. 2017)", 55.91, 76.54, 82.46),
    ("VSCR (Ours)", 70.59, 88.33, 92.51),
)

# Table 6, VeRi-776: (method, r=1, r=5, mAP, backbone).
TABLE6 = (
    ("GoogLeNet (Yang et al. 2015)", 52.12, 66.79, 17.81, "GoogLeNet"),
    ("FACT (Liu et al. 2016d)", 50.95, 73.48, 18.49, "GoogLeNet"),
    ("FACT+STR (Liu et al. 2016d)", 61.44, 78.78, 27.77, "GoogLeNet"),
    ("VGG+C+T (Zhang et al. 2017)", 86.41, 92.91, 58.78, "VGG_CNN_M"),
    ("OIFE (Wang et al. 2017)", 65.9, 87.7, 48.00, "GoogLeNet†"),
    ("OIFE+ST (Wang et al. 2017)", 68.3, 89.7, 51.42, "GoogLeNet†"),
    ("Path-LSTM (Shen et al. 2017)", 83.49, 90.04, 58.27, "ResNet50"),
    ("RAM (Liu et al. 2018)", 88.6, 94.0, 61.5, "VGG_CNN_M"),
    ("SCAN (Teng et al. 2018)", 82.24, 90.76, 49.87, "VGG16"),
    ("VAMI (Zhou and Shao 2018)", 77.03, 90.82, 50.13, "Self-design"),
    ("VAMI+ST (Zhou and Shao 2018)", 85.92, 91.84, 61.32, "Self-design"),
    ("MSVR (Kanac and Zhu 2018)", 88.56, None, 49.30, "MobileNets"),
    ("PVSS (Liu et al. 2019a)", 90.58, 97.14, 62.62, "ResNet50"),
    ("FDA-Net (Lou et al. 2019)", 84.27, 92.43, 55.49, "VGG_CNN_M"),
    ("PRM(256 × 256) (He et al. 2019a)", 92.2, 97.9, 70.2, "ResNet50"),
    ("VANet (Chu et al. 2019)", 89.78, 95.99, 66.34, "ResNet50"),
    ("AAVER (Khorramshahi et al. 2019)", 88.97, 94.70, 61.18, "ResNet50"),
    ("VSCR (ours)", 94.11, 97.85, 75.53, "ResNet50"),
)

# Table 7, VehicleID (large test set, 2,400 ids): (method, r=1, r=5, mAP, backbone).
TABLE7 = (
    ("GoogLeNet (Yang et al. 2015)", 38.27, 59.39, 40.39, "GoogLeNet"),
    ("Mixed Diff+CCL (Liu et al. 2016a)", 38.2, 61.6, 45.5, "VGG_CNN_M"),
    ("VGG+C+T (Zhang et al. 2017)", 61.0, 77.5, None, "VGG_CNN_M"),
    ("CLVR (Kanacı et al. 2017)", 50.6, 68.00, None, "Inception-V3"),
    ("OIFE+ST (Wang et al. 2017)", 67.0, 82.9, None, "GoogLeNet†"),
    ("RAM (Liu et al. 2018)", 67.7, 84.5, None, "VGG_CNN_M"),
    ("C2F (Guo et al. 2018)", 51.4, 72.2, 53.0, "GoogleNet"),
    ("SCAN (Teng et al. 2018)", 65.44, 78.47, None, "VGG16"),
    ("VAMI (Zhou and Shao 2018)", 47.34, 70.29, None, "Self-design"),
    ("MSVR (Kanac and Zhu 2018)", 63.02, 73.05, None, "MobileNets"),
    ("FDA-Net (Lou et al. 2019)", 55.53, 74.65, 61.84, "VGG_CNN_M"),
    ("PRM(256 × 256) (He et al. 2019a)", 74.2, 86.4, None, "ResNet50"),
    ("AAVER (Khorramshahi et al. 2019)", 60.23, 84.85, None, "ResNet50"),
    ("VSCR (ours)", 74.58, 87.12, 78.78, "ResNet50"),
)

# Table 8, VERI-Wild: (method, (r=1, r=5, mAP) for small, medium, large, backbone).
TABLE8 = (
    ("GoogLeNet (Yang et al. 2015)", (57.16, 75.13, 24.27), (53.16, 71.1, 24.15),
     (44.61, 63.55, 21.53), "GoogLeNet"),
    ("Triplet (Schroff et al. 2015)", (44.67, 63.33, 15.69), (40.34, 58.98, 13.34),
     (33.46, 51.36, 9.93), "GoogLeNet"),
    ("Softmax (Liu et al. 2016d)", (53.4, 75.03, 26.41), (46.16, 69.88, 22.66),
     (37.94, 59.89, 17.62), "GoogLeNet"),
    ("CCL (Liu et al. 2016a)", (56.96, 75.0, 22.50), (51.92, 70.98, 19.28),
     (44.6, 60.95, 14.81), "VGG_CNN_M"),
    ("HDC (Yuan et al. 2017)", (57.1, 78.93, 29.14), (49.64, 72.28, 24.76),
     (43.97, 64.89, 18.30), "GoogLeNet"),
    ("GSTE (Bai et al. 2018)", (60.46, 80.13, 31.42), (52.12, 74.92, 26.18),
     (45.36, 66.5, 19.50), "VGG_CNN_M"),
    ("Unlabled GAN (Zhu et al. 2017)", (58.06, 79.6, 29.86), (51.58, 74.42, 24.71),
     (43.63, 65.52, 18.23), "Self-design"),
    ("FDA-Net (Lou et al. 2019)", (64.03, 82.8, 35.11), (57.82, 78.34, 29.80),
     (49.43, 70.48, 22.78), "VGG_CNN_M"),
    ("Baseline (ours)", (88.32, 92.08, 67.66), (82.86, 90.34, 63.16), (78.02, 87.29, 56.56),
     "ResNet50"),
    ("VSCR (ours)", (93.13, 97.70, 75.79), (89.68, 96.56, 70.47), (86.29, 94.60, 64.19),
     "ResNet50"),
)

# The test protocols' gallery sizes (Sects. 3.1 and 5.1), from which the paper's chance rows
# follow: UAV-VeID's test gallery holds one image of each of its 2,208 test identities
# (UAV_VEID_SPLITS), VehicleID's large test set one of each of 2,400, VeRi-776's 11,579 images of
# 200 identities; VERI-Wild's training set (30,671 identities, 277,797 images) is the only count
# the paper gives for VERI-Wild's gallery density. VERI-Wild's three test subsets hold 3,000,
# 5,000 and 10,000 identities: the paper only names them small, medium and large (Table 8) and
# gives the large one through Table 1 (40,671 - 30,671); the other two sizes are VERI-Wild's own
# (Lou et al. 2019), quoted here because the chance rows need them.
VEHICLEID_LARGE_TEST_IDS = 2_400
VERI776_TEST = {"identities": 200, "gallery_images": 11_579}
VERIWILD_TRAIN = {"identities": 30_671, "images": 277_797}
VERIWILD_TEST_IDS = {"small": 3_000, "medium": 5_000, "large": 10_000}
